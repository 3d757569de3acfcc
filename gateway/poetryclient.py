"""
C{xform get-poetry}: the poetry client 6.0 of the Twisted introduction's
Part 13.

It downloads every poem at once, has each one transformed by a transform
server over any protocol L{gateway.clients} speaks, and prints the poems in
the order they were given, each under a header naming its source::

    ==> 127.0.0.1:10003 <==
    <the poem>

    ==> 127.0.0.1:10004 <==
    <the poem>

Each poem is a chain of callbacks: the download's L{Deferred} (made and
fired by the poem's L{PoetryClientFactory}), then the transform step, a
callback that returns the transform client's L{Deferred} -- a nested
L{Deferred}, as in Part 13 -- and falls back to the original poem when the
transform fails.
"""

from typing import BinaryIO, TextIO
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import HostnameEndpoint
from twisted.python import usage
from twisted.python.failure import Failure

from gateway.clients import describeFailure, readCAFile, transformClient
from gateway.options import InterleavedOptions, OptionError, positive
from gateway.schemes import SCHEMES, TLS_URLS
from gateway.urls import ServerURL, parseServerURL
from protocols.addresses import describeAddress
from protocols.interfaces import ITransformClient
from protocols.poetry import PoetryClientFactory

#: The host of a poetry server given by its port alone.
DEFAULT_HOST = "127.0.0.1"

#: The timeouts of each poem, by option.
TIMEOUTS = ("connect-timeout", "download-timeout", "transform-timeout")


def parsePoetryServer(text: str) -> ServerURL:
    """
    Parse C{[HOST:]PORT} (C{[::1]:10003} for an IPv6 address).

    @raise ValueError: with a message fit for a user.
    """
    try:
        if text.isdigit():
            host, port = DEFAULT_HOST, int(text)
        else:
            parts = urlsplit(f"//{text}")
            whole = parts.netloc == text and parts.username is None
            host, port = (parts.hostname, parts.port) if whole else (None, None)
    except ValueError:
        host = port = None
    if not host or not port or not port < 65536:
        raise ValueError(f"{text!r} is not a poetry server's [HOST:]PORT")
    return ServerURL("poetry", host, port)


class GetPoetryOptions(InterleavedOptions):
    """
    The options of C{xform get-poetry}.
    """

    synopsis = "[options] [HOST:]PORT ..."
    longdesc = (
        "Download a poem from each poetry server (HOST defaults to 127.0.0.1), all at once; "
        "with --transform-server, have each one transformed there, falling back to the "
        "original poem if that fails; print the poems in the order given. Progress goes to "
        "standard error. Exits with 0 if every poem arrived, 1 if not."
    )
    optFlags = [
        [
            "netstring",
            None,
            "The poetry servers send each poem as one netstring (poetry-server --netstring).",
        ],
        ["quiet", "q", "Report no progress, only failures."],
    ]
    optParameters = [
        ["transform", None, "cummingsify", "The transform, or pipeline such as 'cummingsify|reverse'."],
        [
            "transform-server",
            None,
            None,
            "The transform server: netstring://HOST:PORT, amp://HOST:PORT, ws://HOST:PORT/ws "
            "or http://HOST:PORT; over TLS netstrings://, amps://, wss:// or https://. "
            "Without one, the poems are not transformed.",
        ],
        [
            "ca-file",
            None,
            None,
            "Certificates (PEM) of the authorities that sign the transform server's certificate, "
            "trusted instead of the system's, for a TLS URL.",
            readCAFile,
        ],
        [
            "timeout",
            None,
            10.0,
            "Seconds for each timeout below that is not given.",
            positive(float),
        ],
        [
            "connect-timeout",
            None,
            None,
            "Seconds to connect to a poetry server.",
            positive(float),
        ],
        [
            "download-timeout",
            None,
            None,
            "Seconds a poetry server may send nothing.",
            positive(float),
        ],
        [
            "transform-timeout",
            None,
            None,
            "Seconds each transform may take.",
            positive(float),
        ],
    ]

    def parseArgs(self, *servers: str) -> None:
        try:
            self["servers"] = [parsePoetryServer(server) for server in servers]
        except ValueError as error:
            raise usage.UsageError(str(error)) from None

    def postOptions(self) -> None:
        if not self["servers"]:
            raise usage.UsageError("which poems? give the [HOST:]PORT of at least one poetry server")
        for name in TIMEOUTS:
            if self[name] is None:
                self[name] = self["timeout"]
        if self["transform-server"] is not None:
            try:
                self["transform-server"] = parseServerURL(self["transform-server"])
            except ValueError as error:
                raise OptionError("transform-server", str(error)) from None
        server = self["transform-server"]
        if self["ca-file"] is not None and server is None:
            raise OptionError("ca-file", "it is for a --transform-server over TLS, and there is none")
        if self["ca-file"] is not None and not SCHEMES[server.scheme].tls:
            raise OptionError("ca-file", f"{server} does not use TLS; {TLS_URLS} do")


class PoetryClient:
    """
    Get poems and have them transformed: the client 6.0.

    @ivar reactor: connects and measures the timeouts.
    @ivar options: the parsed L{GetPoetryOptions}.
    @ivar transformer: the transform server's client, or C{None} for no
        transform step.
    @ivar out: where the poems are written, as UTF-8.
    @ivar err: where progress and failures are written.
    """

    def __init__(self, reactor, options: GetPoetryOptions, out: BinaryIO, err: TextIO) -> None:
        """
        @raise usage.UsageError: if no client speaks the transform server's
            scheme.
        """
        self.reactor = reactor
        self.options = options
        self.out = out
        self.err = err
        self.transformer: ITransformClient | None = None
        server = options["transform-server"]
        if server is not None:
            try:
                self.transformer = transformClient(
                    reactor, server, options["transform-timeout"], options["ca-file"]
                )
            except ValueError as error:
                raise OptionError("transform-server", str(error)) from None

    async def run(self) -> int:
        """
        Get every poem, print those that arrived in order, and disconnect
        the transform client (see L{gateway.clients}).

        @return: the exit status: 0 if every poem arrived, else 1.
        """
        servers = self.options["servers"]
        try:
            poems = await gatherResults([self.getPoem(server) for server in servers])
        finally:
            if self.transformer is not None:
                await self.transformer.disconnect()
        arrived = [(server, poem) for server, poem in zip(servers, poems, strict=True) if poem is not None]
        for index, (server, poem) in enumerate(arrived):
            separator = "\n" if index else ""
            newline = "" if poem.endswith("\n") else "\n"
            self.out.write(f"{separator}==> {describeAddress(server)} <==\n{poem}{newline}".encode())
        self.out.flush()
        return 0 if len(arrived) == len(servers) else 1

    def getPoem(self, server: ServerURL) -> "Deferred[str | None]":
        """
        Download the poem of C{server} and, if there is a transform server,
        transform it.

        @return: a L{Deferred} firing with the poem to print, or with
            C{None} if none arrived (the reason is reported).
        """
        factory = PoetryClientFactory(
            self.reactor,
            netstring=self.options["netstring"],
            idleTimeout=self.options["download-timeout"],
            progress=lambda received: self._progress(server, f"{received} bytes"),
        )
        poem = factory.download(
            HostnameEndpoint(self.reactor, server.host, server.port), self.options["connect-timeout"]
        )
        return poem.addCallbacks(
            self.tryToTransform, self._downloadFailed, callbackArgs=(server,), errbackArgs=(server,)
        )

    def tryToTransform(self, poem: str, server: ServerURL) -> "str | Deferred[str]":
        """
        The transform step: a L{Deferred} of the transformed poem, or of
        C{poem} itself if the transform fails.
        """
        if self.transformer is None:
            return poem
        transformed = self.transformer.xform(self.options["transform"], poem)
        return transformed.addCallbacks(
            self._transformed, self._fallBack, callbackArgs=(server,), errbackArgs=(server, poem)
        )

    def _transformed(self, poem: str, server: ServerURL) -> str:
        self._progress(server, f"transformed by {self.options['transform-server']}")
        return poem

    def _fallBack(self, failure: Failure, server: ServerURL, poem: str) -> str:
        self._report(
            server,
            f"cannot transform with {self.options['transform']!r} at {self.options['transform-server']} "
            f"({describeFailure(failure)}); printing the original poem",
        )
        return poem

    def _downloadFailed(self, failure: Failure, server: ServerURL) -> None:
        self._report(server, f"no poem: {describeFailure(failure)}")
        return None

    def _progress(self, server: ServerURL, news: str) -> None:
        if not self.options["quiet"]:
            print(f"{describeAddress(server)}: {news}", file=self.err, flush=True)

    def _report(self, server: ServerURL, message: str) -> None:
        print(f"xform: {describeAddress(server)}: {message}", file=self.err, flush=True)
