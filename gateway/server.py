"""
The gateway's service tree: one L{TransformService} shared by a listener per
protocol, each listener built from an endpoint string, all counting their
connections in one L{Connections} and reporting to one L{GatewayMetrics}.
"""

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.python import usage

from gateway.clients import readCAFile, transformClient
from gateway.drain import Gateway
from gateway.listening import ListeningService
from gateway.logs import FORMATS, LEVELS
from gateway.metrics import GatewayMetrics
from gateway.options import CommandOptions, OptionError, oneOf, positive, repeatable, serverEndpoint
from gateway.poems import defaultPoemsDirectory, loadPoems
from gateway.upstream import Upstream
from gateway.urls import parseServerURL
from gateway.web import makeMetricsSite, makeSite
from protocols.amp.server import TransformAMPFactory
from protocols.common import TransformServerFactory
from protocols.connections import Connections
from protocols.netstring import TransformFactory
from protocols.origins import OriginPolicy, normalizeOrigin
from protocols.websocket import IDLE_TIMEOUT, PING_INTERVAL
from service import Limits, TransformService, builtinCatalogue

#: The value of a listener option that switches that listener off.
OFF = "off"

#: The listen backlog of every listener the gateway builds, unless its
#: endpoint string gives one (C{backlog=N}): with Twisted's default of 50, a
#: burst of new connections overflows the kernel's queue, and the connections
#: it drops wait a second for the client's next try.  The kernel caps it
#: (C{net.core.somaxconn}, 4096 on Linux since 5.4).
BACKLOG = 1024

#: The types of endpoint strings that take a C{backlog}.
_WITH_BACKLOG = frozenset({"tcp", "tcp6", "ssl", "unix"})


@dataclass(frozen=True)
class Listener:
    """
    One protocol the gateway can serve.

    @ivar default: the endpoint string it listens on unless told otherwise.
    @ivar makeFactory: builds its protocol factory from the gateway's
        L{Gateway} tree, the options, the metrics and the reactor.
    """

    default: str
    makeFactory: Callable[[Gateway, "ServeOptions", GatewayMetrics, object], Factory]


def _transformServer(factoryClass: type[TransformServerFactory]):
    """
    How to make the factory of a transform server of C{factoryClass} (the
    netstring and AMP servers), over the gateway's service, connections
    and metrics.
    """

    def makeFactory(gateway: Gateway, options: "ServeOptions", metrics: GatewayMetrics, reactor) -> Factory:
        return factoryClass(
            gateway.service,
            reactor,
            idleTimeout=options["idle-timeout"],
            connections=gateway.connections,
            observer=metrics.protocols[factoryClass.protocolName],
        )

    return makeFactory


def _webFactory(gateway: Gateway, options: "ServeOptions", metrics: GatewayMetrics, reactor) -> Factory:
    return makeSite(
        gateway.service,
        loadPoems(options["poems"]),
        OriginPolicy(options["allowed-origin"]),
        reactor,
        idleTimeout=options["idle-timeout"],
        accessLog=options["log-level"] == "debug",
        connections=gateway.connections,
        metrics=metrics,
        readiness=gateway.readiness,
        webSocketIdleTimeout=options["ws-idle-timeout"],
        pingInterval=options["ws-ping-interval"],
    )


#: The protocols of the gateway, by the name of their option, in start order.
LISTENERS: dict[str, Listener] = {
    "netstring": Listener("tcp:10001:interface=127.0.0.1", _transformServer(TransformFactory)),
    "amp": Listener("tcp:10002:interface=127.0.0.1", _transformServer(TransformAMPFactory)),
    "web": Listener("tcp:8080:interface=127.0.0.1", _webFactory),
}


class ServeOptions(CommandOptions):
    """
    The options of C{xform serve}, and of the C{xform-gateway} twistd
    plugin: each also from its C{XFORM_} environment variable
    (L{gateway.options}).

    @ivar arguments: the arguments parsed, environment aside.
    """

    commandName = "xform serve"
    synopsis = "[options]"
    longdesc = (
        "Serve the poetry transform service. Listeners take Twisted endpoint strings "
        "(e.g. tcp:10001:interface=0.0.0.0) or 'off'. Every option can also be given "
        "in its environment variable; the command line wins."
    )
    environmentPrefix = "XFORM_"
    notConfiguration = CommandOptions.notConfiguration | {"print-config"}

    optFlags = [
        [
            "print-config",
            None,
            "Print the configuration, one option per line with where its value came from, and exit.",
        ],
    ]
    optParameters = [
        *(
            [name, None, listener.default, f"Endpoint of the {name} protocol, or 'off'."]
            for name, listener in LISTENERS.items()
        ),
        ["max-poem-bytes", None, Limits.maxPoemBytes, "Largest poem accepted, in bytes.", positive(int)],
        ["deadline", None, Limits.deadline, "Seconds a request may take.", positive(float)],
        ["max-in-flight", None, Limits.maxInFlight, "Requests served at once.", positive(int)],
        [
            "idle-timeout",
            None,
            30.0,
            "Seconds a client may stay silent before its request is whole (on AMP: with nothing in flight), "
            "or leave its answers unread.",
            positive(float),
        ],
        [
            "ws-idle-timeout",
            None,
            IDLE_TIMEOUT,
            "Seconds a WebSocket may send no message while it has no request in flight; "
            "then it is closed (1000, 'idle').",
            positive(float),
        ],
        [
            "ws-ping-interval",
            None,
            PING_INTERVAL,
            "Seconds between the gateway's pings on each WebSocket; one not answered within "
            "--idle-timeout closes it.",
            positive(float),
        ],
        [
            "workers",
            None,
            1,
            "Processes serving the listeners, on the same addresses (xform serve only).",
            positive(int),
        ],
        [
            "stop-margin",
            None,
            5.0,
            "Seconds past the drain delay and timeout that the workers have to end once stopping, "
            "before they are killed (xform serve --workers only).",
            positive(float),
        ],
        ["log-level", None, "info", f"Least level logged: {', '.join(LEVELS)}.", oneOf(*LEVELS)],
        [
            "log-format",
            None,
            "text",
            "Log lines as text or json (one JSON object per line).",
            oneOf(*FORMATS),
        ],
        [
            "max-connections",
            None,
            512,
            "Connections open at once, over every listener; one more is closed at once "
            "(HTTP: answered 503 first).",
            positive(int),
        ],
        [
            "max-connections-per-peer",
            None,
            128,
            "Connections one client address may hold open at once (raise it behind a proxy).",
            positive(int),
        ],
        [
            "drain-timeout",
            None,
            10.0,
            "Seconds the connections have to finish their requests once SIGTERM or SIGINT comes.",
            positive(float),
        ],
        [
            "drain-delay",
            None,
            0.0,
            "Seconds to go on serving once SIGTERM or SIGINT comes, unready (/readyz answers 503), "
            "before the listeners close and the drain starts: time for a load balancer's health "
            "checks to send new work elsewhere.",
            positive(float, orZero=True),
        ],
        [
            "metrics",
            None,
            OFF,
            "Endpoint of a listener serving /metrics, /healthz and /readyz alone, or 'off' "
            "(the web listener serves them too).",
        ],
        [
            "poems",
            None,
            None,
            "Directory of the poems served at /poems "
            "(default: the checkout's poems/, else the copy installed with the package).",
            Path,
        ],
        [
            "ca-file",
            None,
            None,
            "Certificates (PEM) of the authorities that sign the certificates of upstreams "
            "over TLS, trusted instead of the system's.",
            readCAFile,
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["allowed-origin"] = []
        self["upstream"] = {}
        self.arguments: list[str] = []

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Parse C{options} and the environment, keeping the arguments in
        L{arguments}: the workers of C{--workers} parse them again, in the
        same environment, to run with the same configuration.
        """
        self.arguments = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    @repeatable
    def opt_allowed_origin(self, origin: str) -> None:
        """
        An origin (https://host:port) whose pages may use /ws and POST, besides
        the gateway's own.
        """
        normalizeOrigin(origin)
        self["allowed-origin"].append(origin)

    @repeatable
    def opt_upstream(self, value: str) -> None:
        """
        PREFIX=URL: offer the transforms of the server at URL (netstring://HOST:PORT, amps://HOST:PORT, ...)
        as PREFIX:NAME.
        """
        prefix, equals, url = value.partition("=")
        if not equals:
            raise ValueError(f"{value!r}: give PREFIX=URL")
        if prefix in self["upstream"]:
            raise ValueError(f"prefix {prefix!r} is given twice")
        try:
            self["upstream"][prefix] = parseServerURL(url)
        except ValueError as error:
            raise ValueError(f"{prefix}: {error}") from None

    def postOptions(self) -> None:
        if self["poems"] is None:
            self["poems"] = defaultPoemsDirectory()
        elif not self["poems"].is_dir():
            raise OptionError("poems", f"{str(self['poems'])!r} is not a directory")
        if all(self[name] == OFF for name in LISTENERS):
            raise usage.UsageError("every listener is off: nothing to serve")


def withBacklog(description: str, backlog: int = BACKLOG) -> str:
    """
    The endpoint string C{description} with a C{backlog} parameter, if its
    type takes one and it gives none.
    """
    kind = description.partition(":")[0].lower()
    if kind not in _WITH_BACKLOG or re.search(r"(?<!\\):backlog=", description):
        return description
    return f"{description}:backlog={backlog}"


def listenerEndpoint(reactor, description: str, option: str):
    """
    The server endpoint of the endpoint string C{description}, given to
    C{--<option>}, with a backlog of L{BACKLOG} unless it gives its own.

    @raise OptionError: if C{description} is invalid, quoting it as given.
    """
    endpoint = serverEndpoint(reactor, description, option)
    withOurs = withBacklog(description)
    return endpoint if withOurs == description else serverEndpoint(reactor, withOurs, option)


def makeService(
    options: ServeOptions,
    reactor,
    handleSignals: bool = True,
    endpoints: Mapping[str, IStreamServerEndpoint] | None = None,
) -> Gateway:
    """
    Build the gateway: a L{Gateway} tree of the shared
    L{TransformService} with the upstreams' transforms delegated to them
    (each L{Upstream} a service too, which disconnects its client when the
    gateway stops), a L{ListeningService} for each listener that is not
    C{off}, and the C{--metrics} listener if it is on.  Stopping the tree
    drains the connections (L{gateway.drain}).

    @param handleSignals: let the tree take SIGINT and SIGTERM once the
        reactor runs: what the runners want, and a test in-process not.
    @param endpoints: the endpoint of each listener to run, by name, instead
        of every listener the options describe and C{--metrics}: a worker's
        inherited sockets (L{gateway.workers}).
    @raise OptionError: if an endpoint string is invalid, or an upstream's
        prefix is unusable or its scheme has no client.
    """
    limits = Limits(
        maxPoemBytes=options["max-poem-bytes"],
        deadline=options["deadline"],
        maxInFlight=options["max-in-flight"],
    )
    catalogue = builtinCatalogue(reactor)
    service = TransformService(catalogue, reactor, limits)
    connections = Connections(options["max-connections"], options["max-connections-per-peer"])
    root = Gateway(
        reactor, service, connections, options["drain-timeout"], handleSignals, options["drain-delay"]
    )
    root.metrics = metrics = GatewayMetrics(service, connections, lambda: not root.readiness())
    for prefix, server in options["upstream"].items():
        try:
            client = transformClient(reactor, server, limits.deadline, options["ca-file"])
            client = metrics.observeUpstream(prefix, client)
            upstream = Upstream(prefix, server, client, reactor)
            catalogue.delegate(prefix, upstream.resolve, upstream.listing)
        except ValueError as error:
            raise OptionError("upstream", f"{prefix}={server}: {error}") from None
        upstream.setServiceParent(root)
    if endpoints is None:
        endpoints = {
            name: listenerEndpoint(reactor, options[name], name) for name in LISTENERS if options[name] != OFF
        }
        if options["metrics"] != OFF:
            endpoints["metrics"] = listenerEndpoint(reactor, options["metrics"], "metrics")
    for name, listener in LISTENERS.items():
        if name in endpoints:
            factory = listener.makeFactory(root, options, metrics, reactor)
            root.addListener(ListeningService(name, endpoints[name], factory))
    if "metrics" in endpoints:
        ListeningService(
            "metrics", endpoints["metrics"], makeMetricsSite(metrics, root.readiness, reactor)
        ).setServiceParent(root)
    return root
