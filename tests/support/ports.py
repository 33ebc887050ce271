"""A local TCP port that nothing listens on at the moment of asking."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the OS just handed out and took back: free now, for a server that cannot
    bind port 0 itself, or as an address where a connection is refused. Something else
    may take it before it is used; callers that bind it must be ready to try again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
