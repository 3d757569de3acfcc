"""
Which web pages may use the gateway from a visitor's browser.

A browser lets any page open a WebSocket to any address, and tells the
server only the page's origin (the C{Origin} header).  Without a check, a
page on another site could drive a gateway running on the visitor's own
machine.  So the WebSocket handshake of C{/ws} and the C{POST}s of the HTTP
face are refused (403) unless:

    - there is no C{Origin} header: not a browser (curl, Python...), which
      could send anything anyway; or
    - the page is the gateway's own (same origin): the C{Origin}'s scheme,
      host and port are those the request was sent to -- C{https} if it
      came over TLS (an C{ssl:} listener), else C{http}, and its C{Host}
      header -- and that host is an IP address or C{localhost}.  A name that resolves
      to the gateway only counts once allowed explicitly: otherwise a
      hostile site could rebind its own name to 127.0.0.1 (DNS rebinding)
      and look same-origin; or
    - the origin is one of those allowed explicitly
      (C{xform serve --allowed-origin https://poems.example.org}).

C{Origin: null} (sandboxed frames, local files) is always refused.
"""

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

#: The port each web scheme implies.
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalizeOrigin(text: str) -> str:
    """
    The canonical form of an origin, C{scheme://host:port}, lower case and
    with the port spelled out.

    @raise ValueError: if C{text} is not an http or https origin (a path,
        a query or user information make it no origin either).
    """
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} is not an origin") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise ValueError(f"{text!r} is not an origin such as https://example.org:8080")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or _DEFAULT_PORTS[parts.scheme]}"


def _isLocalName(host: str) -> bool:
    """
    Whether C{host} (of a C{Host} header, without the port) names this
    machine by address rather than by a name some DNS server controls.
    """
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class OriginPolicy:
    """
    Decide whether a browser page may use the gateway.

    @ivar allowed: the normalized origins allowed besides the same origin.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        """
        @param allowed: origins such as C{https://example.org}.
        @raise ValueError: if one is not an origin.
        """
        self.allowed = frozenset(normalizeOrigin(origin) for origin in allowed)

    def allows(self, origin: str | None, host: str | None, secure: bool) -> bool:
        """
        Whether a request with these headers may proceed.

        @param origin: its C{Origin} header, or C{None} if it has none.
        @param host: its C{Host} header, or C{None}.
        @param secure: whether it came over TLS.
        """
        if origin is None:
            return True
        try:
            origin = normalizeOrigin(origin)
        except ValueError:
            return False  # "null", or garbage
        if origin in self.allowed:
            return True
        if not host:
            return False
        scheme = "https" if secure else "http"
        try:
            own = normalizeOrigin(f"{scheme}://{host}")
        except ValueError:
            return False
        return origin == own and _isLocalName(urlsplit(own).hostname)

    def explain(self, origin: str) -> str:
        """
        Why a request from C{origin} was refused, and how to allow it.
        """
        return (
            f"origin {origin[:200]!r} is not allowed: only pages of the gateway itself, "
            "reached by IP address or localhost, or origins given with --allowed-origin"
        )
