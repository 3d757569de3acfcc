"""
Addresses in words, for logs and start-up lines.
"""


def describeAddress(address: object) -> str:
    """
    C{host:port} for an IP address (C{[host]:port} for IPv6), the path for a
    UNIX socket, or the address's own text otherwise.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(getattr(address, "name", address))


def peerOf(address: object) -> str:
    """
    The client address that connections are counted by: the host of an IP
    address, without its port (C{"192.0.2.7"}); any other address's text.
    """
    host = getattr(address, "host", None)
    return host if host is not None else describeAddress(address)
