"""
The C{xform} command: C{xform serve} runs the gateway, C{xform transform}
asks a running gateway to transform a poem.
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


class TransformOptions(InterleavedOptions):
    """
    The options of C{xform transform}.
    """

    synopsis = "NAME [FILE]"
    longdesc = (
        "Transform the poem in FILE (or standard input) with the transform NAME "
        "(a pipeline such as 'cummingsify|reverse' works too) and print the result. "
        "Blocking sockets, no reactor."
    )
    optParameters = [
        [
            "server",
            "s",
            "netstring://127.0.0.1:10001",
            "The gateway, as netstring://HOST:PORT, ws://HOST:PORT/ws or http://HOST:PORT.",
        ],
        ["timeout", "t", 10.0, "Seconds to wait for the whole exchange.", float],
    ]

    def parseArgs(self, name: str, path: str | None = None) -> None:
        self["name"] = name
        self["path"] = path

    def postOptions(self) -> None:
        try:
            self["server"] = parseServerURL(self["server"])
        except ValueError as error:
            raise usage.UsageError(f"--server: {error}") from None
        if not self["timeout"] > 0:
            raise usage.UsageError("--timeout must be positive")


class XformOptions(usage.Options):
    """
    The C{xform} command line.
    """

    synopsis = "xform"
    subCommands = [
        ["serve", None, ServeOptions, "Run the gateway."],
        ["transform", None, TransformOptions, "Transform a poem with a running gateway."],
    ]

    def opt_version(self) -> None:
        """
        Print the version and exit.
        """
        print(f"xform-gateway {_version()}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError("which command? (serve, transform)")


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
    raise SystemExit(_transform(options.subOptions))
