"""Free TCP ports on 127.0.0.1, picked at run time."""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
# Ports already handed out by this process: the kernel may offer a port again between our bind-and-close
# and the server's own bind, so never hand the same one out twice.
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and this process has not handed out."""
    with _lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free port found on 127.0.0.1")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    return [free_port() for _ in range(count)]
