"""Who is calling: the connection's socket -> the process holding it -> the pod it was started in."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


# ------------------------------------------------------------------------------------------------
# Who is calling: the connection's socket -> the process holding it -> the pod it was started in
# ------------------------------------------------------------------------------------------------
def _socket_inode(client_port: int, server_port: int) -> str | None:
    want_local = f"0100007F:{client_port:04X}"
    want_remote = f"0100007F:{server_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as fh:
            next(fh)
            for row in fh:
                cols = row.split()
                local, remote = cols[1], cols[2]
                if table.endswith("6"):
                    local, remote = _v6_to_v4(local), _v6_to_v4(remote)
                if local == want_local and remote == want_remote:
                    return cols[9]
    return None


def _v6_to_v4(text: str) -> str:
    address, port = text.split(":")
    return f"{address[-8:]}:{port}" if address[:24] == "0000000000000000FFFF0000" else text


def _environ(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def pod_processes(server_port: int, pod: str | None = None) -> dict[str, str]:
    """pid -> pod name of every process started in a pod of this stand-in, children included: they carry
    the pod's HOSTNAME and this API server's KUBERNETES_SERVICE_PORT in their environment (whatever
    session or parent they have since moved to, e.g. a Prefect flow run started in a new session)."""
    marker = f"KUBERNETES_SERVICE_PORT={server_port}".encode()
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        env = _environ(pid).split(b"\0")
        if marker not in env:
            continue
        host = next((v[9:].decode() for v in env if v.startswith(b"HOSTNAME=")), None)
        if host and (pod is None or host == pod):
            found[pid] = host
    return found


def peer_pod(client_port: int, server_port: int) -> str | None:
    """The pod whose process holds this client socket, if any."""
    inode = _socket_inode(client_port, server_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid, pod in pod_processes(server_port).items():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pod
    return None
