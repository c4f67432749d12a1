#!/usr/bin/env python3
# Write the seed corpus of fuzz_spec (run from the top of the tree; the
# output is committed): OCI config.json objects as MessagePack.
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
        if o >= 0:
            return b"\xcf" + struct.pack(">Q", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        b = o.encode()
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(o, list):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(map(pack, o))
    return (b"\xde" + struct.pack(">H", len(o)) +
            b"".join(pack(k) + pack(v) for k, v in o.items()))

ns = [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network")]
proc = {"terminal": True, "consoleSize": {"height": 40, "width": 100},
        "user": {"uid": 1000, "gid": 1000, "umask": 18,
                 "additionalGids": [10, 20]},
        "args": ["sh", "-c", "echo hi"], "env": ["PATH=/bin", "A=b"],
        "cwd": "/tmp",
        "capabilities": {k: ["CAP_CHOWN", "CAP_KILL"] for k in
                         ("bounding", "effective", "inheritable",
                          "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
        "noNewPrivileges": True, "oomScoreAdj": -500}
full = {"ociVersion": "1.0.2", "process": proc,
        "root": {"path": "c1/rootfs", "readonly": True}, "hostname": "h",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "mode=755", "size=65536k"]},
                   {"destination": "/data", "type": "bind", "source": "vol",
                    "options": ["rbind", "ro", "rprivate"]}],
        "linux": {"namespaces": ns, "maskedPaths": ["/proc/kcore"],
                  "readonlyPaths": ["/proc/sys"],
                  "sysctl": {"kernel.shmmax": "1000"},
                  "devices": [{"path": "/dev/fuse", "type": "c", "major": 10,
                               "minor": 229, "fileMode": 438}],
                  "resources": {"memory": {"limit": 67108864},
                                "pids": {"limit": 100}},
                  "seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
                              "syscalls": [{"names": ["mkdir"],
                                            "action": "SCMP_ACT_ERRNO",
                                            "errnoRet": 1}]},
                  "rootfsPropagation": "rslave"}}
minimal = {"process": {"args": ["true"]}, "root": {"path": "r"},
           "linux": {"namespaces": [{"type": "mount"}]}}
bad = {"process": {"args": ["true"]}, "root": {"path": "r"},
       "linux": {"namespaces": [{"type": "user"}],
                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}}

out = "tests/fuzz/corpus/fuzz_spec"
os.makedirs(out, exist_ok=True)
for name, o in (("full", full), ("minimal", minimal), ("bad", bad),
                ("process", proc)):
    with open(os.path.join(out, name), "wb") as f:
        f.write(pack(o))
