"""
The gateway's service tree: one L{TransformService} shared by a listener per
protocol, each listener built from an endpoint string.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.protocol import Factory
from twisted.python import usage

from gateway.clients import readCAFile, transformClient
from gateway.listening import ListeningService, ListeningTree
from gateway.logs import FORMATS, LEVELS
from gateway.options import CommandOptions, OptionError, oneOf, positive, repeatable, serverEndpoint
from gateway.poems import defaultPoemsDirectory, loadPoems
from gateway.upstream import Upstream
from gateway.urls import parseServerURL
from gateway.web import makeSite
from gateway.workers import WorkerThreads
from protocols.amp.server import TransformAMPFactory
from protocols.netstring import TransformFactory
from protocols.origins import OriginPolicy, normalizeOrigin
from service import Limits, TransformService, builtinCatalogue

#: The value of a listener option that switches that listener off.
OFF = "off"


@dataclass(frozen=True)
class Listener:
    """
    One protocol the gateway can serve.

    @ivar default: the endpoint string it listens on unless told otherwise.
    @ivar makeFactory: builds its protocol factory from the shared service,
        the options and the reactor.
    """

    default: str
    makeFactory: Callable[[TransformService, "ServeOptions", object], Factory]


def _netstringFactory(service: TransformService, options: "ServeOptions", reactor) -> Factory:
    return TransformFactory(service, reactor, idleTimeout=options["idle-timeout"])


def _ampFactory(service: TransformService, options: "ServeOptions", reactor) -> Factory:
    return TransformAMPFactory(service, reactor, idleTimeout=options["idle-timeout"])


def _webFactory(service: TransformService, options: "ServeOptions", reactor) -> Factory:
    return makeSite(
        service,
        loadPoems(options["poems"]),
        OriginPolicy(options["allowed-origin"]),
        reactor,
        idleTimeout=options["idle-timeout"],
        accessLog=options["log-level"] == "debug",
    )


#: The protocols of the gateway, by the name of their option, in start order.
LISTENERS: dict[str, Listener] = {
    "netstring": Listener("tcp:10001:interface=127.0.0.1", _netstringFactory),
    "amp": Listener("tcp:10002:interface=127.0.0.1", _ampFactory),
    "web": Listener("tcp:8080:interface=127.0.0.1", _webFactory),
}


class ServeOptions(CommandOptions):
    """
    The options of C{xform serve}, and of the C{xform-gateway} twistd
    plugin: each also from its C{XFORM_} environment variable
    (L{gateway.options}).
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
            "Seconds a client may stay silent before its request is whole (on AMP: with nothing in flight).",
            positive(float),
        ],
        ["workers", None, 2, "Threads that transform large poems.", positive(int)],
        ["log-level", None, "info", f"Least level logged: {', '.join(LEVELS)}.", oneOf(*LEVELS)],
        [
            "log-format",
            None,
            "text",
            "Log lines as text or json (one JSON object per line).",
            oneOf(*FORMATS),
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


def makeService(options: ServeOptions, reactor) -> ListeningTree:
    """
    Build the gateway: a L{ListeningTree} of worker threads, the shared
    L{TransformService} with the upstreams' transforms delegated to them
    (each L{Upstream} a service too, which disconnects its client when the
    gateway stops), and a L{ListeningService} for each listener that is not
    C{off}.

    @raise OptionError: if an endpoint string is invalid, or an upstream's
        prefix is unusable or its scheme has no client.
    """
    root = ListeningTree(reactor)
    workers = WorkerThreads(reactor, options["workers"])
    workers.setServiceParent(root)
    limits = Limits(
        maxPoemBytes=options["max-poem-bytes"],
        deadline=options["deadline"],
        maxInFlight=options["max-in-flight"],
    )
    catalogue = builtinCatalogue(reactor)
    for prefix, server in options["upstream"].items():
        try:
            client = transformClient(reactor, server, limits.deadline, options["ca-file"])
            upstream = Upstream(prefix, server, client, reactor)
            catalogue.delegate(prefix, upstream.resolve, upstream.listing)
        except ValueError as error:
            raise OptionError("upstream", f"{prefix}={server}: {error}") from None
        upstream.setServiceParent(root)
    service = TransformService(catalogue, reactor, limits, offload=workers.offload)
    for name, listener in LISTENERS.items():
        description = options[name]
        if description == OFF:
            continue
        endpoint = serverEndpoint(reactor, description, name)
        ListeningService(name, endpoint, listener.makeFactory(service, options, reactor)).setServiceParent(
            root
        )
    return root
