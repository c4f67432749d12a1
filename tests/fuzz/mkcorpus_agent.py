#!/usr/bin/env python3
# Write the seed corpus of fuzz_agent_seccomp (run from the top of the
# tree; the output is committed): OCI linux.seccomp and linux.resources
# objects as MessagePack, encoded here so that this needs only Python.
import os
import struct

def pack(o):
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if -32 <= o < 0:
            return struct.pack(">b", o)
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        b = o.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else
                b"\xd9" + bytes([len(b)])) + b
    if isinstance(o, list):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(map(pack, o))
    if isinstance(o, dict):
        return (b"\xde" + struct.pack(">H", len(o)) +
                b"".join(pack(k) + pack(v) for k, v in o.items()))
    raise TypeError(o)

seeds = {
    "default": {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read", "write", "exit_group", "nosuch"],
             "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 0xffffffff, "op": "SCMP_CMP_EQ"}]},
            {"names": ["umask"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 18, "valueTwo": 18,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 1},
        ]},
    "allow": {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_LOG"}]},
    "resources": {
        "memory": {"limit": 67108864, "reservation": 1 << 25, "swap": -1,
                   "kernel": 0, "swappiness": None},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000,
                "cpus": "0-1", "mems": "0"},
        "pids": {"limit": 100}, "devices": [], "blockIO": {}},
}

out = "tests/fuzz/corpus/fuzz_agent_seccomp"
os.makedirs(out, exist_ok=True)
for name, obj in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(pack(obj))
