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
