"""
The C{xform} command: C{xform serve} runs the gateway, C{xform transform}
asks a running gateway to transform a poem, C{xform transforms} lists what
it offers.
"""

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.task import react
from twisted.python import usage

from gateway import syncclient
from gateway.logs import startLogging
from gateway.options import InterleavedOptions
from gateway.server import ServeOptions, listeners, makeService
from gateway.urls import parseServerURL


def _version() -> str:
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
        "Blocking sockets, no reactor."
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
        "that can list them (amp://). Blocking sockets, no reactor."
    )
    defaultServer = "amp://127.0.0.1:10002"


class XformOptions(usage.Options):
    """
    The C{xform} command line.
    """

    synopsis = "xform"
    subCommands = [
        ["serve", None, ServeOptions, "Run the gateway."],
        ["transform", None, TransformOptions, "Transform a poem with a running gateway."],
        ["transforms", None, TransformsOptions, "List the transforms of a running gateway."],
    ]

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"xform-gateway {_version()}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("which command? (serve, transform, transforms)")


async def _serve(reactor, root: MultiService) -> None:
    """
    Run the gateway until SIGINT or SIGTERM stops the reactor; exit with
    status 1 if a listener cannot listen.
    """
    running: Deferred[None] = Deferred()
    reactor.callWhenRunning(running.callback, None)  # once signal handlers are in place
    await running
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    root.startService()
    try:
        await gatherResults([child.whenListening() for child in listeners(root)], consumeErrors=True)
    except FirstError:
        raise SystemExit(1) from None  # the listener has logged why
    await Deferred()  # until a signal stops the reactor


def _transform(options: TransformOptions) -> int:
    path = options["path"]
    try:
        if path is None:
            poem = sys.stdin.buffer.read().decode("utf-8")
        else:
            with open(path, "rb") as file:
                poem = file.read().decode("utf-8")
    except OSError as error:
        print(f"xform: cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"xform: {path or 'standard input'} is not UTF-8 text", file=sys.stderr)
        return 2
    try:
        result = syncclient.transform(options["server"], options["name"], poem, options["timeout"])
    except syncclient.ClientError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(result.encode("utf-8"))
    sys.stdout.flush()
    return 0


def _listTransforms(options: TransformsOptions) -> int:
    try:
        entries = syncclient.listTransforms(options["server"], options["timeout"])
    except syncclient.ClientError as error:
        print(f"xform: {error}", file=sys.stderr)
        return 1
    width = max((len(name) for name, description in entries), default=0)
    for name, description in entries:
        print(f"{name:<{width}}  {description}")
    return 0


def _usageError(command: usage.Options, error: usage.UsageError) -> NoReturn:
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
    if options.subCommand == "serve":
        from twisted.internet import reactor

        try:
            root = makeService(options.subOptions, reactor)
        except usage.UsageError as error:
            _usageError(options.subOptions, error)
        startLogging(options.subOptions["log-level"])
        react(_serve, [root])
    if options.subCommand == "transforms":
        raise SystemExit(_listTransforms(options.subOptions))
    raise SystemExit(_transform(options.subOptions))
