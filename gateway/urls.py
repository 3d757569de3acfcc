"""
Transform server addresses as URLs: C{netstring://host:port},
C{amp://host:port}, C{ws://host:port/ws}, C{http://host:port}; the schemes
are those of L{gateway.schemes}.
"""

from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from gateway.schemes import SCHEMES


@dataclass(frozen=True)
class ServerURL:
    """
    Where a transform server listens and which protocol it speaks.
    """

    scheme: str
    host: str
    port: int
    path: str = ""

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    def withDefaultPath(self) -> str:
        """
        The URL, with its scheme's default path if it names none
        (C{ws://host:port/ws}).
        """
        return str(replace(self, path=self.path or SCHEMES[self.scheme].path))


def parseServerURL(text: str) -> ServerURL:
    """
    Parse a server URL; the port defaults by scheme.

    @raise ValueError: with a message fit for a user, if C{text} is not
        such a URL.
    """
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES or not parts.netloc:
        schemes = ", ".join(scheme.form for scheme in SCHEMES.values())
        raise ValueError(f"{text!r} is not a server URL ({schemes})")
    try:
        port = parts.port or SCHEMES[parts.scheme].defaultPort
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"{text!r} names no host")
    return ServerURL(parts.scheme, parts.hostname, port, parts.path)
