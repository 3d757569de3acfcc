"""
The web face: one L{twisted.web} site serving the page, the WebSocket
JSON-RPC endpoint and the HTTP routes, all over the shared service::

    /                   the page and its files (gateway/static/)
    /ws                 WebSocket JSON-RPC 2.0 (L{protocols.websocket})
    /transform/<name>   POST a poem (L{protocols.http})
    /transforms         the catalogue as JSON
    /poems, /poems/<n>  the bundled poems
    /healthz            liveness
"""

from collections.abc import Mapping
from pathlib import Path

from autobahn.twisted.resource import WebSocketResource
from twisted.web.static import File

from protocols.http import (
    HealthResource,
    PoemsResource,
    TransformResource,
    TransformsResource,
    WebSite,
)
from protocols.origins import OriginPolicy
from protocols.websocket import TransformWebSocketFactory
from service.transformer import TransformService

#: The page's files, shipped inside the package.
STATIC = Path(__file__).resolve().parent / "static"


def makeSite(
    service: TransformService,
    poems: Mapping[str, str],
    origins: OriginPolicy,
    reactor=None,
    idleTimeout: float = 60.0,
) -> WebSite:
    """
    The web face's site.

    @param poems: the poems served at C{/poems}, by name.
    @param origins: the pages allowed to use C{/ws} and to post.
    @param reactor: runs the WebSocket timers (the global one if C{None}).
    @param idleTimeout: seconds an HTTP connection may stay silent.
    """
    root = File(str(STATIC))
    root.putChild(b"ws", WebSocketResource(TransformWebSocketFactory(service, origins, reactor)))
    root.putChild(b"transform", TransformResource(service, origins))
    root.putChild(b"transforms", TransformsResource(service))
    root.putChild(b"poems", PoemsResource(poems))
    root.putChild(b"healthz", HealthResource())
    site = WebSite(root, maxBodyBytes=service.limits.maxPoemBytes)
    site.timeOut = idleTimeout
    return site
