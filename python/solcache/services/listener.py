"""The HTTP listening socket of `solcache serve`, bound before anything else happens."""

from __future__ import annotations

import socket

__all__ = ["bind_listener"]


def bind_listener(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening (IPv4 or IPv6, as ``host`` resolves).

    Raises ``OSError`` (``EADDRINUSE``, ``EACCES``, an unknown host …) before any other part of
    the service has started, so a busy port costs nothing. ``SO_REUSEADDR`` lets a restarted
    service bind while the previous one's connections are in ``TIME_WAIT``; it does not let two
    services share a port.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    error: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as e:
            sock.close()
            error = e
            continue
        sock.setblocking(False)
        sock.set_inheritable(False)
        return sock
    raise error if error is not None else OSError(f"{host!r} resolves to no address")
