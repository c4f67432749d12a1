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
       "linux": {"namespaces": [{"type": "user"}, {"type": "mount"}],
                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}}

# docker 20.10's config.json (the unit tests' fixture).
import json
with open("tests/unit/fixtures/docker-20.10-config.json") as f:
    docker = json.load(f)
# Every linux.resources member, the user namespace and the fields a VM
# only logs.
every = json.loads(json.dumps(full))
every["process"].update({
    "apparmorProfile": "docker-default", "selinuxLabel": "x",
    "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
    "scheduler": {"policy": "SCHED_BATCH", "nice": 5,
                  "flags": ["SCHED_FLAG_RESET_ON_FORK"]}})
every["domainname"] = "example.org"
every["linux"]["namespaces"] = ns + [{"type": "user"}, {"type": "cgroup"}]
every["linux"].update({
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
    "mountLabel": "l", "intelRdt": {"closID": "c"},
    "personality": {"domain": "LINUX32"}, "rootfsPropagation": "rshared",
    "resources": {
        "memory": {"limit": 67108864, "swappiness": 60,
                   "disableOOMKiller": True, "checkBeforeUpdate": True},
        "cpu": {"shares": 512, "realtimeRuntime": 1000,
                "realtimePeriod": 100000, "burst": 0, "idle": 1},
        "blockIO": {"weight": 500, "leafWeight": 100,
                    "weightDevice": [{"major": 8, "minor": 0,
                                      "weight": 600}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                               "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0,
                                                 "rate": 10}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577,
                    "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 100}},
        "unified": {"memory.high": "1G"},
        "devices": [{"allow": False, "access": "rwm"}],
        "somethingNew": 1}})

out = "tests/fuzz/corpus/fuzz_spec"
os.makedirs(out, exist_ok=True)
for name, o in (("full", full), ("minimal", minimal), ("bad", bad),
                ("process", proc), ("docker-20.10", docker),
                ("every-field", every)):
    with open(os.path.join(out, name), "wb") as f:
        f.write(pack(o))
