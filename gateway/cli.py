"""
The C{xform} command: C{xform serve} runs the gateway, C{xform transform}
asks a running gateway to transform a poem, C{xform transforms} lists what
it offers, C{xform poetry-server} serves poems and C{xform get-poetry}
fetches and transforms them.

Each command imports what it needs when it runs: C{xform --help} and the
blocking C{xform transform} and C{xform transforms} never import the
reactor or Autobahn.
"""

import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import NoReturn

from twisted.python import usage

from gateway.options import InterleavedOptions, readPoem


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xform-gateway")
    except PackageNotFoundError:
        return "unknown"


class ClientOptions(InterleavedOptions):
    """
    The options of the commands that talk to a running gateway: C{--server}
    and C{--timeout}.

    @cvar defaultServer: the server asked unless C{--server} says.
    """

    defaultServer = "netstring://127.0.0.1:10001"

    optParameters = [
        [
            "server",
            "s",
            None,
            "The gateway: netstring://HOST:PORT, amp://HOST:PORT, ws://HOST:PORT/ws or http://HOST:PORT.",
        ],
        ["timeout", "t", 10.0, "Seconds to wait for the whole exchange.", float],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["server"] = self.defaults["server"] = self.defaultServer

    def postOptions(self) -> None:
        from gateway.urls import parseServerURL

        try:
            self["server"] = parseServerURL(self["server"])
        except ValueError as error:
            raise usage.UsageError(f"--server: {error}") from None
        if not self["timeout"] > 0:
            raise usage.UsageError("--timeout must be positive")


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
        "that can list them (amp://, ws:// or http://; netstrings cannot). "
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


class XformOptions(usage.Options):
    """
    The C{xform} command line.
    """

    synopsis = "xform"
    subCommands = [
        ["serve", None, _serveOptions, "Run the gateway."],
        ["transform", None, TransformOptions, "Transform a poem with a running gateway."],
        ["transforms", None, TransformsOptions, "List the transforms of a running gateway."],
        ["poetry-server", None, _poetryServerOptions, "Serve poems, each on its own port (Part 11)."],
        ["get-poetry", None, _getPoetryOptions, "Fetch poems and have them transformed (Part 13)."],
    ]

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"xform-gateway {_version()}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(f"which command? ({', '.join(name for name, *_ in self.subCommands)})")


async def _startListening(reactor, root) -> None:
    """
    Start C{root} once the reactor runs, with a shutdown stopping it, and
    wait until every listener in it listens.

    @raise FirstError: if one cannot; it has logged why.
    """
    from twisted.internet.defer import Deferred, gatherResults

    from gateway.listening import listeners

    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)  # once signal handlers are in place
    await running
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    root.startService()
    await gatherResults([child.whenListening() for child in listeners(root)], consumeErrors=True)


async def _serve(reactor, root) -> None:
    """
    Run the gateway until SIGINT or SIGTERM stops the reactor; exit with
    status 1 if a listener cannot listen.
    """
    from twisted.internet.defer import Deferred, FirstError

    try:
        await _startListening(reactor, root)
    except FirstError:
        raise SystemExit(1) from None  # the listener has logged why
    await Deferred()  # until a signal stops the reactor


async def _servePoetry(reactor, root) -> None:
    """
    Serve poems until SIGINT or SIGTERM stops the reactor.  Once every poem
    is served, say where on standard output, one line each, and start the
    log; exit with status 2 and one line if a poem cannot be served.
    """
    from twisted.internet.defer import Deferred, FirstError

    from gateway.listening import listeners
    from gateway.logs import startLogging
    from protocols.addresses import describeAddress

    try:
        await _startListening(reactor, root)
    except FirstError as error:
        failed = listeners(root)[error.index]
        print(f"xform: {failed.name} cannot listen: {error.subFailure.getErrorMessage()}", file=sys.stderr)
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
        result = SCHEMES[server.scheme].transform(server, options["name"], poem, options["timeout"])
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
        entries = scheme.listTransforms(server, options["timeout"])
    except ClientError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 1
    width = max((len(name) for name, description in entries), default=0)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")
    return 0


def _usageError(command: usage.Options, error: usage.UsageError) -> NoReturn:
    """
    Report a usage error and exit with status 2: with the command's help
    above it, or only the one line for commands that have C{briefErrors}.
    """
    if getattr(command, "briefErrors", False):
        print(f"xform: {error}", file=sys.stderr)
    else:
        print(f"{command}\nxform: {error}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> NoReturn:
    """
    Run the C{xform} command; exits with 0 on success, 1 on failure and 2
    for bad usage.
    """
    options = XformOptions()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as error:
        _usageError(options.subOptions if options.subCommand else options, error)
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
        _usageError(subOptions, error)
    react(run)


def _prepare(command: str, options: usage.Options, reactor) -> Callable[[object], Awaitable[None]]:
    """
    Build what C{command} runs on the reactor.

    @raise usage.UsageError: if the options turn out unusable.
    """
    from gateway.logs import startLogging

    if command == "serve":
        from gateway.server import makeService

        root = makeService(options, reactor)
        startLogging(options["log-level"])
        return partial(_serve, root=root)
    if command == "poetry-server":
        from gateway.poetryserver import makePoetryService

        return partial(_servePoetry, root=makePoetryService(options, reactor))
    from gateway.poetryclient import PoetryClient

    return partial(_getPoetry, client=PoetryClient(reactor, options, sys.stdout.buffer, sys.stderr))


async def _getPoetry(reactor, client) -> NoReturn:
    raise SystemExit(await client.run())
