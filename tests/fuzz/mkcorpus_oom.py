#!/usr/bin/env python3
# Write the seed corpus of fuzz_oom (run from the top of the tree; the
# output is committed): framed wait_oom answers as the proxy relays
# them, hand-encoded MessagePack.
import os
import struct

def s(x):
    b = x.encode()
    return bytes([0xa0 | len(b)]) + b

def fmap(kv):
    return bytes([0x80 | len(kv)]) + b"".join(k + v for k, v in kv)

def farr(items):
    return bytes([0x90 | len(items)]) + b"".join(items)

def frame(m):
    return struct.pack(">I", len(m)) + m

def resp(i, res):
    return farr([b"\x01", bytes([i]), b"\xc0", res])

def kills(v):
    return fmap([(s("oom_kills"), v)])

seeds = {
    "one": frame(resp(1, kills(b"\x01"))),
    # up, past the burst, to the top, then back
    "grow": b"".join(frame(resp(i, kills(v))) for i, v in
                     [(1, b"\x00"), (2, b"\x03"),
                      (3, b"\xcf" + struct.pack(">Q", 2**64 - 1)),
                      (4, b"\x02")]),
    "bad": b"".join(frame(resp(i, r)) for i, r in
                    [(1, kills(b"\xff")), (2, kills(s("3"))),
                     (3, farr([b"\x01"])), (4, fmap([]))]),
    "error": frame(farr([b"\x01", b"\x05",
                         fmap([(s("code"), b"\x04"),
                               (s("message"), s("container c1: removed"))]),
                         b"\xc0"])),
}
d = "tests/fuzz/corpus/fuzz_oom"
os.makedirs(d, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
