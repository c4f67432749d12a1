#!/usr/bin/env python3
# Seeds for fuzz_proxy and fuzz_proxy_shim (run from the top of the
# tree; the output is committed): agent->proxy byte streams of framed
# output notifications, ends of streams and responses.
import os
import struct

def s(x):
    b = x.encode()
    return bytes([0xa0 | len(b)]) + b

def b(x):
    return (b"\xc4" + bytes([len(x)]) if len(x) < 256 else
            b"\xc5" + struct.pack(">H", len(x))) + x

def u(n):
    return bytes([n]) if n < 128 else b"\xce" + struct.pack(">I", n)

def fmap(kv):
    return bytes([0x80 | len(kv)]) + b"".join(k + v for k, v in kv)

def frame(m):
    return struct.pack(">I", len(m)) + m

def output(cid, eid, stream, data):
    return frame(b"\x93\x02" + s("output") + fmap([
        (s("container_id"), s(cid)), (s("exec_id"), s(eid)),
        (s("stream"), u(stream)), (s("data"), b(data))]))

def response(msgid, result):
    return frame(b"\x94\x01" + u(msgid) + b"\xc0" + result)

seeds = {
    "output": output("c1", "", 1, b"hello\n") + output("c1", "", 2, b"err\n"),
    "eof": output("c1", "e1", 1, b"x" * 300) + output("c1", "e1", 1, b"") +
           output("c1", "e1", 2, b""),
    "many": b"".join(output("c%d" % i, "", 1, b"y" * 1000) for i in range(8)),
    "window": b"".join(output("w", "", 1, b"z" * 60000) for i in range(5)),
    "status": response(3, fmap([(s("status"), u(137))])),
    "ack": frame(b"\x93\x02" + s("output_ack") + fmap([
        (s("container_id"), s("c1")), (s("exec_id"), s("")),
        (s("stream"), u(1)), (s("bytes"), u(5))])),
}
for target in ("fuzz_proxy", "fuzz_proxy_shim"):
    d = os.path.join("tests/fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
