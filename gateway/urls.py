"""
Transform server addresses as URLs: C{netstring://host:port},
C{amp://host:port}, C{ws://host:port/ws}, C{http://host:port}.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

#: The port each scheme uses when the URL names none.
DEFAULT_PORTS = {"netstring": 10001, "amp": 10002, "ws": 8080, "http": 8080}

#: The path of the WebSocket endpoint when a ws:// URL names none.
WEBSOCKET_PATH = "/ws"


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


def urlForm(scheme: str) -> str:
    """
    The form of a URL of C{scheme}, for messages: C{amp://HOST:PORT},
    C{ws://HOST:PORT/ws}.
    """
    return f"{scheme}://HOST:PORT{WEBSOCKET_PATH if scheme == 'ws' else ''}"


def parseServerURL(text: str) -> ServerURL:
    """
    Parse a server URL; the port defaults by scheme.

    @raise ValueError: with a message fit for a user, if C{text} is not
        such a URL.
    """
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        schemes = ", ".join(map(urlForm, DEFAULT_PORTS))
        raise ValueError(f"{text!r} is not a server URL ({schemes})")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"{text!r} names no host")
    return ServerURL(parts.scheme, parts.hostname, port, parts.path)
