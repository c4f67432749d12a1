#!/usr/bin/python3
"""Calls to containerd's CRI RuntimeService (runtime.v1), as kubelet
makes them, for tests/bats/shimv2.bats (Debian has no crictl).

    cri_client.py SOCKET [--pod NAME] [--logs DIR] [--annotation K=V]...
                  [--cgroup-parent DIR] CALL ARGS...

    version                    runtime name, version, API version
    runp HANDLER               RunPodSandbox of pod NAME: its id
    create [-t] [-i] [-m BYTES] [-c QUOTA] [-v HOST:PATH[:ro]]...
           POD CNAME IMAGE CMD...
                               CreateContainer: its id (log CNAME.log);
                               -i: with stdin, closed when the first
                               attach ends (stdin_once), -t: a terminal,
                               as kubectl run -it; -m: a memory limit,
                               -c: a CPU quota (µs per 100000); -v: a
                               mount of HOST (read-only with :ro), as
                               kubelet's volumes
    start | stop | rm | status CONTAINER
                               status prints: STATE EXIT-CODE REASON
    exec CONTAINER CMD...      ExecSync: its stdout and stderr, then exit
                               with its code
    stream [-t] [-i TEXT] CONTAINER CMD...
                               Exec (-t: with a terminal and stdin, as
                               kubectl exec -it; -i: TEXT sent on its
                               stdin, which stays open), then its URL on
                               the CRI's streaming server as kubectl exec
                               takes it (websocket, v4.channel.k8s.io):
                               the same
    attach [-t] [-i TEXT] CONTAINER
                               Attach to the container's process (-t: its
                               terminal), as kubectl attach: the same
                               streaming as stream, TEXT on its stdin;
                               exits 0 when the process's output ends
    update CONTAINER SHARES    UpdateContainerResources: cpu_shares
    stats CONTAINER            ContainerStats: cpu=NS memory=BYTES
                               working_set=BYTES
    podstatus POD              PodSandboxStatus: STATE IP HANDLER
    stopp | rmp POD            StopPodSandbox, RemovePodSandbox
    lsp                        ListPodSandbox: the pods' ids

--pod names the pod (default pod1), --logs its log directory,
--annotation adds to its annotations and --cgroup-parent sets its
cgroup parent (as kubelet's pod cgroup): the same for runp and for
create, whose request carries the pod's config.
A failed call prints "cri_client.py CALL: CODE: message", exits 1.

The messages are built here from the fields these calls use (the CRI's
field numbers); protobuf keeps the others of an answer as unknown.
"""
import base64
import json
import os
import socket
import struct
import sys
import urllib.parse

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FD = descriptor_pb2.FieldDescriptorProto
STR, BOOL, U32, I32, I64, U64, MSG, BYTES = (
    FD.TYPE_STRING, FD.TYPE_BOOL, FD.TYPE_UINT32, FD.TYPE_INT32,
    FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_MESSAGE, FD.TYPE_BYTES)
REP = "repeated"
MAP = "map<string, string>"

# message: [(field, number, type[, message type | REP])]
MESSAGES = {
    "VersionRequest": [("version", 1, STR)],
    "VersionResponse": [("version", 1, STR), ("runtime_name", 2, STR),
                        ("runtime_version", 3, STR),
                        ("runtime_api_version", 4, STR)],
    "PodSandboxMetadata": [("name", 1, STR), ("uid", 2, STR),
                           ("namespace", 3, STR), ("attempt", 4, U32)],
    "LinuxPodSandboxConfig": [("cgroup_parent", 1, STR)],
    "PodSandboxConfig": [("metadata", 1, MSG, "PodSandboxMetadata"),
                         ("hostname", 2, STR), ("log_directory", 3, STR),
                         ("annotations", 7, MSG, MAP),
                         ("linux", 8, MSG, "LinuxPodSandboxConfig")],
    "RunPodSandboxRequest": [("config", 1, MSG, "PodSandboxConfig"),
                             ("runtime_handler", 2, STR)],
    "PodSandboxId": [("pod_sandbox_id", 1, STR)],
    "LinuxContainerResources": [("cpu_period", 1, I64), ("cpu_quota", 2, I64),
                                ("cpu_shares", 3, I64),
                                ("memory_limit_in_bytes", 4, I64)],
    "LinuxContainerConfig": [("resources", 1, MSG,
                              "LinuxContainerResources")],
    "Mount": [("container_path", 1, STR), ("host_path", 2, STR),
              ("readonly", 3, BOOL)],
    "UpdateContainerResourcesRequest": [
        ("container_id", 1, STR),
        ("linux", 2, MSG, "LinuxContainerResources")],
    "ListPodSandboxRequest": [],
    "PodSandboxNetworkStatus": [("ip", 1, STR)],
    "PodSandboxStatus": [("id", 1, STR), ("state", 3, I32),
                         ("network", 5, MSG, "PodSandboxNetworkStatus"),
                         ("runtime_handler", 9, STR)],
    "PodSandboxStatusResponse": [("status", 1, MSG, "PodSandboxStatus")],
    "UInt64Value": [("value", 1, U64)],
    "CpuUsage": [("usage_core_nano_seconds", 2, MSG, "UInt64Value")],
    "MemoryUsage": [("working_set_bytes", 2, MSG, "UInt64Value"),
                    ("usage_bytes", 4, MSG, "UInt64Value")],
    "ContainerStats": [("cpu", 2, MSG, "CpuUsage"),
                       ("memory", 3, MSG, "MemoryUsage")],
    "ContainerStatsResponse": [("stats", 1, MSG, "ContainerStats")],
    "PodSandbox": [("id", 1, STR)],
    "ListPodSandboxResponse": [("items", 1, MSG, "PodSandbox")],
    "Empty": [],
    "ContainerMetadata": [("name", 1, STR), ("attempt", 2, U32)],
    "ImageSpec": [("image", 1, STR)],
    "ContainerConfig": [("metadata", 1, MSG, "ContainerMetadata"),
                        ("image", 2, MSG, "ImageSpec"),
                        ("command", 3, STR, REP),
                        ("mounts", 7, MSG, "Mount"), ("log_path", 11, STR),
                        ("stdin", 12, BOOL), ("stdin_once", 13, BOOL),
                        ("tty", 14, BOOL),
                        ("linux", 15, MSG, "LinuxContainerConfig")],
    "CreateContainerRequest": [("pod_sandbox_id", 1, STR),
                               ("config", 2, MSG, "ContainerConfig"),
                               ("sandbox_config", 3, MSG,
                                "PodSandboxConfig")],
    "ContainerId": [("container_id", 1, STR)],
    "StopContainerRequest": [("container_id", 1, STR),
                             ("timeout", 2, I64)],
    "ContainerStatus": [("id", 1, STR), ("state", 3, I32),
                        ("exit_code", 7, I32), ("reason", 10, STR)],
    "ContainerStatusResponse": [("status", 1, MSG, "ContainerStatus")],
    "ExecSyncRequest": [("container_id", 1, STR), ("cmd", 2, STR, REP),
                        ("timeout", 3, I64)],
    "ExecSyncResponse": [("stdout", 1, BYTES), ("stderr", 2, BYTES),
                         ("exit_code", 3, I32)],
    "ExecRequest": [("container_id", 1, STR), ("cmd", 2, STR, REP),
                    ("tty", 3, BOOL), ("stdin", 4, BOOL), ("stdout", 5, BOOL),
                    ("stderr", 6, BOOL)],
    "ExecResponse": [("url", 1, STR)],
    "AttachRequest": [("container_id", 1, STR), ("stdin", 2, BOOL),
                      ("tty", 3, BOOL), ("stdout", 4, BOOL),
                      ("stderr", 5, BOOL)],
    "AttachResponse": [("url", 1, STR)],
}
STATES = ["CREATED", "RUNNING", "EXITED", "UNKNOWN"]
POD_STATES = ["READY", "NOTREADY"]
TIMEOUT = 300


def build():
    fd = descriptor_pb2.FileDescriptorProto(
        name="husk_cri_client.proto", package="huskcri", syntax="proto3")
    for name, fields in MESSAGES.items():
        m = fd.message_type.add(name=name)
        for f in fields:
            fp = m.field.add(name=f[0], number=f[1], type=f[2],
                             label=FD.LABEL_OPTIONAL)
            if len(f) > 3 and f[3] == REP:
                fp.label = FD.LABEL_REPEATED
            elif len(f) > 3 and f[3] == MAP:
                # what protoc makes of a map: repeated entries of a
                # nested type marked map_entry
                entry = "".join(w.title() for w in f[0].split("_")) + "Entry"
                e = m.nested_type.add(name=entry)
                e.options.map_entry = True
                e.field.add(name="key", number=1, type=STR,
                            label=FD.LABEL_OPTIONAL)
                e.field.add(name="value", number=2, type=STR,
                            label=FD.LABEL_OPTIONAL)
                fp.label = FD.LABEL_REPEATED
                fp.type_name = ".huskcri.%s.%s" % (name, entry)
            elif len(f) > 3:
                fp.type_name = ".huskcri." + f[3]
                # the lists of messages these calls use
                if f[0] in ("items", "mounts"):
                    fp.label = FD.LABEL_REPEATED
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    factory = message_factory.MessageFactory(pool)
    return {n: factory.GetPrototype(pool.FindMessageTypeByName(
        "huskcri." + n)) for n in MESSAGES}


T = build()


def call(channel, method, request, answer):
    stub = channel.unary_unary(
        "/runtime.v1.RuntimeService/" + method,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=T[answer].FromString)
    return stub(request, timeout=TIMEOUT)


def pod_config(pod):
    c = T["PodSandboxConfig"](
        metadata=T["PodSandboxMetadata"](name=pod["name"],
                                         uid=pod["name"] + "-uid",
                                         namespace="husk-test"),
        hostname=pod["name"], log_directory=pod["logs"])
    c.annotations.update(pod["annotations"])
    if pod["cgroup_parent"]:
        c.linux.cgroup_parent = pod["cgroup_parent"]
    return c


def ws_read(f):
    """One websocket frame from the server (unmasked): opcode, payload."""
    head = f.read(2)
    if len(head) < 2:
        return None, b""
    n = head[1] & 0x7f
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", f.read(8))[0]
    return head[0] & 0x0f, f.read(n)


def ws_send(conn, data):
    """One binary websocket frame from the client (masked, RFC 6455)."""
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", n)
    conn.sendall(head + mask +
                 bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def stream(url, stdin=None):
    """What kubectl exec does with the URL: a websocket whose binary
    messages start with their channel (1 stdout, 2 stderr, 3 the
    status).  Returns the exit code the status gives."""
    u = urllib.parse.urlsplit(url)
    conn = socket.create_connection((u.hostname, u.port), timeout=120)
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n" %
                  (u.path + ("?" + u.query if u.query else ""), u.netloc,
                   key)).encode())
    f = conn.makefile("rb")
    status = f.readline()
    if b" 101 " not in status:
        raise RuntimeError("streaming server: " + status.decode().strip())
    while f.readline() not in (b"\r\n", b""):
        pass
    if stdin:
        ws_send(conn, b"\x00" + stdin.encode())
    code = None
    while True:
        op, data = ws_read(f)
        if op is None or op == 8:
            break
        if op not in (1, 2) or not data:
            continue
        ch, data = data[0], data[1:]
        if ch == 1:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        elif ch == 2:
            sys.stderr.buffer.write(data)
        elif ch == 3 and data:
            st = json.loads(data)
            code = 0 if st.get("status") == "Success" else 1
            for c in st.get("details", {}).get("causes", []):
                if c.get("reason") == "ExitCode":
                    code = int(c.get("message", "1"))
    conn.close()
    if code is None:
        raise RuntimeError("streaming server: no status")
    return code


def stream_flags(args, rest):
    """-t (a terminal) and -i TEXT (for stdin) before at least rest
    other arguments: tty, TEXT or None, the others."""
    tty, text = False, None
    while len(args) > rest and args[0] in ("-t", "-i"):
        if args[0] == "-t":
            tty, args = True, args[1:]
        else:
            text, args = args[1], args[2:]
    return tty, text, args


def run(channel, pod, what, args):
    if what == "version":
        r = call(channel, "Version", T["VersionRequest"](version="v1"),
                 "VersionResponse")
        print(r.runtime_name, r.runtime_version, r.runtime_api_version)
    elif what == "runp" and len(args) == 1:
        r = call(channel, "RunPodSandbox", T["RunPodSandboxRequest"](
            config=pod_config(pod), runtime_handler=args[0]),
            "PodSandboxId")
        print(r.pod_sandbox_id)
    elif what == "create" and len(args) >= 4:
        flags, limits, mounts = set(), {}, []
        while len(args) > 4 and args[0] in ("-t", "-i", "-m", "-c", "-v"):
            if args[0] in ("-t", "-i"):
                flags.add(args[0])
                args = args[1:]
                continue
            if args[0] == "-v":
                v = args[1].split(":")
                mounts.append(T["Mount"](host_path=v[0], container_path=v[1],
                                         readonly=v[2:] == ["ro"]))
            else:
                limits[args[0]] = int(args[1])
            args = args[2:]
        res = T["LinuxContainerResources"]()
        if "-m" in limits:
            res.memory_limit_in_bytes = limits["-m"]
        if "-c" in limits:
            res.cpu_period, res.cpu_quota = 100000, limits["-c"]
        r = call(channel, "CreateContainer", T["CreateContainerRequest"](
            pod_sandbox_id=args[0],
            config=T["ContainerConfig"](
                metadata=T["ContainerMetadata"](name=args[1]),
                image=T["ImageSpec"](image=args[2]), command=args[3:],
                mounts=mounts, log_path=args[1] + ".log", stdin="-i" in flags,
                stdin_once="-i" in flags, tty="-t" in flags,
                linux=T["LinuxContainerConfig"](resources=res)),
            sandbox_config=pod_config(pod)), "ContainerId")
        print(r.container_id)
    elif what in ("start", "rm") and len(args) == 1:
        call(channel, "StartContainer" if what == "start" else
             "RemoveContainer", T["ContainerId"](container_id=args[0]),
             "Empty")
    elif what == "stop" and len(args) == 1:
        call(channel, "StopContainer", T["StopContainerRequest"](
            container_id=args[0], timeout=10), "Empty")
    elif what == "status" and len(args) == 1:
        s = call(channel, "ContainerStatus",
                 T["ContainerId"](container_id=args[0]),
                 "ContainerStatusResponse").status
        print(STATES[s.state] if 0 <= s.state < len(STATES) else s.state,
              s.exit_code, s.reason)
    elif what == "exec" and len(args) >= 2:
        r = call(channel, "ExecSync", T["ExecSyncRequest"](
            container_id=args[0], cmd=args[1:], timeout=120),
            "ExecSyncResponse")
        sys.stdout.buffer.write(r.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(r.stderr)
        return r.exit_code
    elif what == "update" and len(args) == 2:
        call(channel, "UpdateContainerResources",
             T["UpdateContainerResourcesRequest"](
                 container_id=args[0],
                 linux=T["LinuxContainerResources"](
                     cpu_shares=int(args[1]))), "Empty")
    elif what == "stats" and len(args) == 1:
        st = call(channel, "ContainerStats",
                  T["ContainerId"](container_id=args[0]),
                  "ContainerStatsResponse").stats
        print("cpu=%d memory=%d working_set=%d" % (
            st.cpu.usage_core_nano_seconds.value,
            st.memory.usage_bytes.value, st.memory.working_set_bytes.value))
    elif what == "podstatus" and len(args) == 1:
        st = call(channel, "PodSandboxStatus",
                  T["PodSandboxId"](pod_sandbox_id=args[0]),
                  "PodSandboxStatusResponse").status
        print(POD_STATES[st.state] if 0 <= st.state < len(POD_STATES)
              else st.state, st.network.ip, st.runtime_handler)
    elif what == "lsp" and not args:
        for p in call(channel, "ListPodSandbox", T["ListPodSandboxRequest"](),
                      "ListPodSandboxResponse").items:
            print(p.id)
    elif what == "stream" and len(args) >= 2:
        tty, text, args = stream_flags(args, 2)
        # kubectl exec -it: a terminal has no separate stderr, and comes
        # with stdin (containerd 1.6 ends a terminal's output when its
        # stdin ends, and a websocket's unrequested stdin ends at once);
        # stdin stays open, with nothing sent, until the exit.
        r = call(channel, "Exec", T["ExecRequest"](
            container_id=args[0], cmd=args[1:], tty=tty,
            stdin=tty or text is not None, stdout=True, stderr=not tty),
            "ExecResponse")
        return stream(r.url, text)
    elif what == "attach" and args:
        tty, text, args = stream_flags(args, 1)
        if len(args) != 1:
            print(__doc__.strip(), file=sys.stderr)
            return 2
        r = call(channel, "Attach", T["AttachRequest"](
            container_id=args[0], tty=tty, stdin=text is not None,
            stdout=True, stderr=not tty), "AttachResponse")
        return stream(r.url, text)
    elif what in ("stopp", "rmp") and len(args) == 1:
        call(channel, "StopPodSandbox" if what == "stopp" else
             "RemovePodSandbox", T["PodSandboxId"](pod_sandbox_id=args[0]),
             "Empty")
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return 0


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    sock, rest = argv[1], argv[2:]
    pod = {"name": "pod1", "logs": "/var/log/pods/husk-test",
           "annotations": {}, "cgroup_parent": ""}
    while len(rest) > 1 and rest[0] in ("--pod", "--logs", "--annotation",
                                        "--cgroup-parent"):
        if rest[0] == "--pod":
            pod["name"] = rest[1]
        elif rest[0] == "--cgroup-parent":
            pod["cgroup_parent"] = rest[1]
        elif rest[0] == "--logs":
            pod["logs"] = rest[1]
        elif "=" in rest[1]:
            k, v = rest[1].split("=", 1)
            pod["annotations"][k] = v
        else:
            print("cri_client.py: --annotation %s: not KEY=VALUE" % rest[1],
                  file=sys.stderr)
            return 2
        rest = rest[2:]
    if not rest:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with grpc.insecure_channel("unix://" + sock) as channel:
        try:
            return run(channel, pod, rest[0], rest[1:])
        except grpc.RpcError as e:
            print("cri_client.py %s: %s: %s" % (rest[0], e.code().name,
                                                e.details()),
                  file=sys.stderr)
            return 1
        except (OSError, RuntimeError, ValueError) as e:
            print("cri_client.py %s: %s" % (rest[0], e), file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
