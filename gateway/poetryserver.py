"""
C{xform poetry-server}: the poetry servers of the Twisted introduction's
Part 11 (fastpoetry and slowpoetry), several poems in one process, each on
its own port.
"""

from twisted.internet.endpoints import quoteStringArgument
from twisted.python import usage

from gateway.listening import ListeningService, ListeningTree
from gateway.options import InterleavedOptions, OptionError, positive, readPoem, serverEndpoint
from protocols.poetry import Pace, PoetryServerFactory

#: The pace of a slow server when only one of C{--num-bytes} and C{--delay}
#: is given: the tutorial's slowpoetry defaults.
DEFAULT_PACE = Pace(numBytes=10, delay=0.7)


class PoetryServerOptions(InterleavedOptions):
    """
    The options of C{xform poetry-server}.
    """

    synopsis = "FILE... [--port PORT|ENDPOINT]... [options]"
    longdesc = (
        "Serve each poem FILE on its own port: on connect, send the poem and close. "
        "The n-th --port is the n-th FILE's; a FILE without one gets a free port. "
        "Once every poem is served, one line per poem says where, on standard output: "
        "'poetry FILE listening on HOST:PORT'."
    )
    optFlags = [
        ["netstring", None, "Send each poem as one netstring, so that clients can tell a truncated poem."],
    ]
    optParameters = [
        ["iface", None, "localhost", "The interface that numeric ports listen on."],
        [
            "num-bytes",
            None,
            None,
            f"Slow mode: send this many bytes at a time [{DEFAULT_PACE.numBytes} with --delay].",
            positive(int),
        ],
        [
            "delay",
            None,
            None,
            f"Slow mode: seconds between two pieces [{DEFAULT_PACE.delay:g} with --num-bytes].",
            positive(float),
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["ports"] = []

    def opt_port(self, port: str) -> None:
        """Where the next FILE is served: a port number (0 for a free one) on --iface, or an endpoint string such as tcp:10003:interface=0.0.0.0. Repeatable."""
        self["ports"].append(port)

    def parseArgs(self, *files: str) -> None:
        self["files"] = files

    def postOptions(self) -> None:
        files, ports = self["files"], self["ports"]
        if not files:
            raise usage.UsageError("no poem to serve: give at least one FILE")
        if len(ports) > len(files):
            raise usage.UsageError(f"{len(ports)} ports for {len(files)} poems")
        self["endpoints"] = [self._endpoint(port) for port in ports] + [
            self._endpoint("0") for _ in files[len(ports) :]
        ]
        self["poems"] = []
        for path in files:
            try:
                self["poems"].append(readPoem(path).encode("utf-8"))
            except ValueError as error:
                raise usage.UsageError(str(error)) from None
        numBytes, delay = self["num-bytes"], self["delay"]
        self["pace"] = None
        if numBytes is not None or delay is not None:
            self["pace"] = Pace(numBytes or DEFAULT_PACE.numBytes, delay or DEFAULT_PACE.delay)

    def _endpoint(self, port: str) -> str:
        if not port.isdigit():
            return port
        if int(port) > 65535:
            raise OptionError("port", f"{port} is not a port number (0 to 65535)")
        return f"tcp:{int(port)}:interface={quoteStringArgument(self['iface'])}"


def makePoetryService(options: PoetryServerOptions, reactor) -> ListeningTree:
    """
    A L{ListeningTree} of a L{ListeningService} called C{poetry FILE} for
    each poem.

    @raise OptionError: if an endpoint string is invalid.
    """
    root = ListeningTree(reactor)
    for path, poem, description in zip(options["files"], options["poems"], options["endpoints"], strict=True):
        endpoint = serverEndpoint(reactor, description, "port")
        factory = PoetryServerFactory(
            poem, reactor, netstring=options["netstring"], pace=options["pace"], name=path
        )
        ListeningService(f"poetry {path}", endpoint, factory).setServiceParent(root)
    return root
