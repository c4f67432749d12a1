#!/usr/bin/env python3
# Write the seed corpora of fuzz_ttrpc and fuzz_ttrpc_server (run from
# the top of the tree; the output is committed): ttrpc frames holding
# hand-encoded protobuf, for fuzz_ttrpc behind the chunk-size prefix of
# tests/fuzz/fuzz_ttrpc.c.
import os
import struct

def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def ld(field, data):  # length-delimited field
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data

def vi(field, n):  # varint field
    return varint(field << 3) + varint(n)

def request(svc, method, payload=b"", timeout=0, meta=()):
    m = ld(1, svc) + ld(2, method) + ld(3, payload)
    if timeout:
        m += vi(4, timeout)
    for k, v in meta:
        m += ld(5, ld(1, k) + ld(2, v))
    return m

def response(code=0, msg="", payload=b""):
    return ld(1, vi(1, code) + ld(2, msg)) + ld(2, payload)

def frame(stream, typ, payload, flags=0):
    return struct.pack(">IIBB", len(payload), stream, typ, flags) + payload

T = "containerd.task.v2.Task"
NS = [("containerd-namespace-ttrpc", "k8s.io")]
mount = ld(1, "overlay") + ld(2, "overlay") + ld(4, "lowerdir=/a") + ld(4, "upperdir=/b")
any_opts = ld(1, "runtimeoptions.v1.Options") + ld(2, ld(2, "/etc/husk/husk.conf"))
create = (ld(1, "c1") + ld(2, "/run/containerd/bundle/c1") + ld(3, mount) +
          vi(4, 1) + ld(5, "/run/fifo/in") + ld(6, "/run/fifo/out") +
          ld(10, any_opts))
exec_ = ld(1, "c1") + ld(2, "e1") + vi(3, 1) + ld(7, ld(1, "types.containerd.io/opencontainers/runtime-spec/1/Process") + ld(2, b'{"args":["sh"]}'))
update = ld(1, "c1") + ld(2, ld(1, "x") + ld(2, b"{}")) + ld(3, ld(1, "k") + ld(2, "v"))
kill = ld(1, "c1") + vi(3, 9) + vi(4, 1)
envelope = (ld(1, vi(1, 1764700000) + vi(2, 5)) + ld(2, "default") +
            ld(3, "/tasks/exit") +
            ld(4, ld(1, "containerd.events.TaskExit") + ld(2, ld(1, "c1") + vi(3, 42))))

requests = [
    request(T, "Create", create, 10**9, NS),
    request(T, "Start", ld(1, "c1")),
    request(T, "Wait", ld(1, "c1") + ld(2, "e1")),
    request(T, "Exec", exec_),
    request(T, "Kill", kill),
    request(T, "Update", update),
    request(T, "ResizePty", ld(1, "c1") + vi(3, 80) + vi(4, 24)),
    request(T, "Shutdown", ld(1, "c1") + vi(2, 1)),
    request("containerd.services.events.ttrpc.v1.Events", "Forward", ld(1, envelope)),
    request(T, "Nope"),
]
responses = [response(), response(12, "method Nope: not implemented"),
             response(0, "", vi(1, 7))]

stream = b"".join(frame(2 * i + 1, 1, r) for i, r in enumerate(requests))
answers = b"".join(frame(2 * i + 1, 2, r) for i, r in enumerate(responses))
seeds = {
    "requests": b"\x00" + stream,
    "requests_bytes": b"\x01\x01" + stream,
    "requests_mixed": b"\x03\x0a\x01\x07" + stream,
    "responses": b"\x00" + answers,
    "bad_type": b"\x00" + frame(1, 9, b"abc") + frame(3, 1, requests[1]),
    "oversize": b"\x00" + struct.pack(">IIBB", 0xFFFFFFFF, 1, 1, 0) + stream,
    "empty_frames": b"\x02\x03\x0a" + frame(1, 1, b"") + frame(2, 2, b"") + stream,
    "truncated": b"\x00" + stream[:-5],
}
os.makedirs("tests/fuzz/corpus/fuzz_ttrpc", exist_ok=True)
for name, d in seeds.items():
    with open("tests/fuzz/corpus/fuzz_ttrpc/" + name, "wb") as f:
        f.write(d)

# fuzz_ttrpc_server: the raw stream a peer writes to the server.
calls = [
    request(T, "Start", ld(1, "c1")),
    request(T, "Wait", ld(1, "c1")),
    request(T, "Wait", ld(1, "c1") + ld(2, "e1")),
    request(T, "Kill", kill + ld(2, "e9")),
    request(T, "Wait", ld(1, "c2")),
    request(T, "Big", b"x" * 300),
    request(T, "Big", b""),
    request(T, "Start", ld(1, "c1")),
    request(T, "Nope"),
    request("no.Such", "Start"),
]
srv = b"".join(frame(2 * i + 1, 1, r) for i, r in enumerate(calls))
sseeds = {
    "calls": srv,
    "even_and_reused": frame(2, 1, calls[0]) + frame(5, 1, calls[0]) + frame(5, 1, calls[0]) + frame(3, 1, calls[0]),
    "bad_type": frame(1, 9, b"abc") + frame(1, 2, b"") + srv,
    "junk_request": frame(1, 1, b"\x0a\x64ab") + frame(3, 1, request(T, "Start", b"\x0a\x64")),
    "big_many": b"".join(frame(2 * i + 1, 1, request(T, "Big", b"")) for i in range(12)),
    "oversize": srv[:40] + struct.pack(">IIBB", 0x00400001, 99, 1, 0),
    "truncated": srv[:-3],
}
os.makedirs("tests/fuzz/corpus/fuzz_ttrpc_server", exist_ok=True)
for name, d in sseeds.items():
    with open("tests/fuzz/corpus/fuzz_ttrpc_server/" + name, "wb") as f:
        f.write(d)
