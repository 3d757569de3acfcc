"""
The C{xform} command: C{xform serve} runs the gateway, C{xform transform}
asks a running gateway to transform a poem, C{xform transforms} lists what
it offers, C{xform poetry-server} serves poems and C{xform get-poetry}
fetches and transforms them.

Each command imports what it needs when it runs: C{xform --help} and the
blocking C{xform transform} and C{xform transforms} never import the
reactor or Autobahn.
"""

import gc
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

from twisted.python import usage

from gateway.options import CommandOptions, InterleavedOptions, OptionError, positive, readPoem


class ClientOptions(InterleavedOptions):
    """
    The options of the commands that talk to a running gateway: C{--server},
    C{--timeout} and C{--ca-file}.

    @cvar defaultServer: the server asked unless C{--server} says.
    @ivar tls: the C{ssl.SSLContext} for a server over TLS, else C{None}.
    """

    defaultServer = "netstring://127.0.0.1:10001"

    optParameters = [
        [
            "server",
            "s",
            None,
            "The gateway: netstring://HOST:PORT, amp://HOST:PORT, ws://HOST:PORT/ws or http://HOST:PORT; "
            "over TLS netstrings://, amps://, wss:// or https://.",
        ],
        ["timeout", "t", 10.0, "Seconds to wait for the whole exchange.", positive(float)],
        [
            "ca-file",
            None,
            None,
            "Certificates (PEM) of the authorities that sign the gateway's certificate, trusted "
            "instead of the system's, for a TLS URL.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["server"] = self.defaults["server"] = self.defaultServer
        self.tls = None

    def postOptions(self) -> None:
        from gateway.schemes import SCHEMES, TLS_URLS
        from gateway.syncclient import tlsContext
        from gateway.urls import parseServerURL

        try:
            self["server"] = server = parseServerURL(self["server"])
        except ValueError as error:
            raise OptionError("server", str(error)) from None
        if not SCHEMES[server.scheme].tls:
            if self["ca-file"] is not None:
                raise OptionError("ca-file", f"{server} does not use TLS; {TLS_URLS} do")
            return
        try:
            self.tls = tlsContext(self["ca-file"])
        except ValueError as error:
            raise OptionError("ca-file", str(error)) from None


class TransformOptions(ClientOptions):
    """
    The options of C{xform transform}.
    """

    synopsis = "NAME [FILE]"
    longdesc = (
        "Transform the poem in FILE (or standard input) with the transform NAME "
        "(a pipeline such as 'cummingsify|reverse' works too) and print the result. "
        "Blocking, no reactor."
    )

    def parseArgs(self, name: str, path: str | None = None) -> None:
        self["name"] = name
        self["path"] = path


class TransformsOptions(ClientOptions):
    """
    The options of C{xform transforms}.
    """

    synopsis = ""
    longdesc = (
        "List the transforms the gateway offers, with what each does, over a protocol "
        "that can list them (amp://, ws:// or http://, and over TLS; netstrings cannot). "
        "Blocking, no reactor."
    )
    defaultServer = "amp://127.0.0.1:10002"


def _serveOptions() -> usage.Options:
    from gateway.server import ServeOptions

    return ServeOptions()


def _poetryServerOptions() -> usage.Options:
    from gateway.poetryserver import PoetryServerOptions

    return PoetryServerOptions()


def _getPoetryOptions() -> usage.Options:
    from gateway.poetryclient import GetPoetryOptions

    return GetPoetryOptions()


class XformOptions(CommandOptions):
    """
    The C{xform} command line.
    """

    commandName = "xform"
    synopsis = "xform"
    subCommands = [
        ["serve", None, _serveOptions, "Run the gateway."],
        ["transform", None, TransformOptions, "Transform a poem with a running gateway."],
        ["transforms", None, TransformsOptions, "List the transforms of a running gateway."],
        ["poetry-server", None, _poetryServerOptions, "Serve poems, each on its own port (Part 11)."],
        ["get-poetry", None, _getPoetryOptions, "Fetch poems and have them transformed (Part 13)."],
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(f"which command? ({', '.join(name for name, *_ in self.subCommands)})")


async def _start(reactor, root) -> None:
    """
    Start C{root}, a L{ListeningTree}, once the reactor runs, with a
    shutdown stopping it.

    @raise CannotListen: if a listener cannot listen.
    """
    from twisted.internet.defer import Deferred

    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)  # once signal handlers are in place
    await running
    root.startService()
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)


async def serveUntilStopped(reactor, root) -> None:
    """
    Run the gateway (or the supervisor of its workers) until SIGINT or
    SIGTERM stops the reactor, even before it is serving.  A listener that
    cannot listen ends it with status 1 and one line: the message of the
    L{CannotListen} that starting the tree raises or, if the listener (or a
    worker) finds out later, the tree's log line.
    """
    from twisted.internet.defer import CancelledError, Deferred

    from gateway.listening import CannotListen

    try:
        await _start(reactor, root)
    except CannotListen as error:
        # react exits with the code of a SystemExit, but Failure.check does
        # not see one in an exception that is also an Exception.
        raise SystemExit(error.code) from None
    try:
        await root.whenListening()
    except CannotListen:
        raise SystemExit(1) from None  # the tree has logged why, and stops the reactor
    except CancelledError:
        pass  # stopped before it served
    await Deferred()  # until a signal stops the reactor


async def _servePoetry(reactor, root) -> None:
    """
    Serve poems until SIGINT or SIGTERM stops the reactor.  Once every poem
    is served, say where on standard output, one line each, and start the
    log; exit with status 2 and one line if a poem cannot be served.
    """
    from twisted.internet.defer import Deferred

    from gateway.listening import CannotListen, listeners
    from gateway.logs import startLogging
    from protocols.addresses import describeAddress

    try:
        await _start(reactor, root)
        await root.whenListening()
    except CannotListen as error:
        print(f"xform: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for listener in listeners(root):
        print(f"{listener.name} listening on {describeAddress(listener.port.getHost())}")
    sys.stdout.flush()
    startLogging("info", discardBuffer=True)  # what it held is what was just said
    await Deferred()


def _transform(options: TransformOptions) -> int:
    from gateway.schemes import SCHEMES
    from gateway.syncclient import ClientError

    try:
        poem = readPoem(options["path"])
    except ValueError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 2
    server = options["server"]
    try:
        result = SCHEMES[server.scheme].transform(
            server, options["name"], poem, options["timeout"], options.tls
        )
    except ClientError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result.encode("utf-8"))
    sys.stdout.flush()
    return 0


def _listTransforms(options: TransformsOptions) -> int:
    from gateway.schemes import SCHEMES
    from gateway.syncclient import ClientError

    server = options["server"]
    scheme = SCHEMES[server.scheme]
    try:
        if scheme.listTransforms is None:
            others = ", ".join(other.form for other in SCHEMES.values() if other.listTransforms)
            raise ClientError(f"{server}: cannot list the transforms: {scheme.cannotList}; use {others}")
        entries = scheme.listTransforms(server, options["timeout"], options.tls)
    except ClientError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 1
    width = max((len(name) for name, description in entries), default=0)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")
    return 0


def main(argv: list[str] | None = None) -> NoReturn:
    """
    Run the C{xform} command; exits with 0 on success, 1 on failure and 2
    for bad usage.
    """
    options = XformOptions()
    options.parseOptions(sys.argv[1:] if argv is None else argv)  # on a usage error, exits with 2
    command, subOptions = options.subCommand, options.subOptions
    if command == "transform":
        raise SystemExit(_transform(subOptions))
    if command == "transforms":
        raise SystemExit(_listTransforms(subOptions))
    from twisted.internet import reactor
    from twisted.internet.task import react

    try:
        run = _prepare(command, subOptions, reactor)
    except usage.UsageError as error:
        subOptions.exitWithUsageError(error)
    # What start-up imported and built lives as long as the process: the
    # cyclic collector need not walk it again at every full collection and
    # at exit (a tenth of a second of each run, docs/performance.md).
    gc.freeze()
    react(run)


def _prepare(command: str, options: usage.Options, reactor) -> Callable[[object], Awaitable[None]]:
    """
    Build what C{command} runs on the reactor.

    @raise usage.UsageError: if the options turn out unusable.
    """
    from gateway.logs import startLogging

    if command == "serve":
        from gateway.tap import prepareService

        root = prepareService(options, reactor)  # checks every option, as each worker will
        if options["workers"] > 1:
            from gateway.workers import makeSupervisor

            root = makeSupervisor(options, reactor)
        startLogging(options["log-level"], options["log-format"])
        return partial(serveUntilStopped, root=root)
    if command == "poetry-server":
        from gateway.poetryserver import makePoetryService

        return partial(_servePoetry, root=makePoetryService(options, reactor))
    from gateway.poetryclient import PoetryClient

    return partial(_getPoetry, client=PoetryClient(reactor, options, sys.stdout.buffer, sys.stderr))


async def _getPoetry(reactor, client) -> NoReturn:
    raise SystemExit(await client.run())
