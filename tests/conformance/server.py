"""
The WebSocket server that Autobahn|Testsuite's fuzzing client tests.

It serves the gateway's own web site, built by L{gateway.web.makeSite}
as C{xform serve} builds it (its timeouts the defaults of C{xform serve}),
with one addition that exists only in the conformance run: C{/echo}, a
WebSocket endpoint made by the same factory class as C{/ws}, with the same
protocol options and timeouts, whose protocol sends every message back
instead of answering it as JSON-RPC.  Most of the testsuite's cases expect
an echo; the rest run against C{/ws} itself.

    python tests/conformance/server.py PORT MAX_POEM_BYTES
"""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import globalLogBeginner, textFileLogObserver

from gateway.server import ServeOptions
from gateway.web import makeSite
from protocols.origins import OriginPolicy
from protocols.websocket import (
    TransformWebSocketFactory,
    TransformWebSocketProtocol,
    TransformWebSocketResource,
)
from service import Limits, TransformService, builtinCatalogue


class EchoProtocol(TransformWebSocketProtocol):
    """
    The gateway's WebSocket protocol, every option and handshake check
    included, answering each message with itself.
    """

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


class EchoFactory(TransformWebSocketFactory):
    protocol = EchoProtocol


def main(port: int, maxPoemBytes: int) -> None:
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    service = TransformService(builtinCatalogue(reactor), reactor, Limits(maxPoemBytes=maxPoemBytes))
    origins = OriginPolicy()
    defaults = ServeOptions()
    idle, webSocketIdle, ping = (
        defaults["idle-timeout"],
        defaults["ws-idle-timeout"],
        defaults["ws-ping-interval"],
    )
    site = makeSite(
        service, {}, origins, reactor, idleTimeout=idle, webSocketIdleTimeout=webSocketIdle, pingInterval=ping
    )
    echo = EchoFactory(
        service,
        origins,
        site.refusals,
        reactor,
        idleTimeout=webSocketIdle,
        peerTimeout=idle,
        pingInterval=ping,
    )
    site.resource.putChild(b"echo", TransformWebSocketResource(echo))
    TCP4ServerEndpoint(reactor, port, interface="127.0.0.1").listen(site)
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
