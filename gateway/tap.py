"""
The target of the C{xform-gateway} twistd plugin: C{twistd -n
xform-gateway}, C{twist xform-gateway}.  Its options are those of C{xform
serve}, and L{prepareService} makes the service for both, so that they
behave the same: a value that cannot be used is one line and exit status 2,
C{--print-config} prints the configuration and exits, and a listener that
cannot listen ends the process with one line and status 1
(L{gateway.listening.ListeningTree}).

Under C{twist} and C{twistd} the runner writes the log, with its own
options (C{twist --log-format json --log-level info}, C{twistd --logfile});
the gateway's C{--log-format} is for C{xform serve}.  So is C{--workers}:
the runners own their one process, so under them C{--workers} above 1 is a
usage error.
"""

import gc

from twisted.logger import Logger
from twisted.python import usage

from gateway.listening import ListeningTree
from gateway.options import OptionError
from gateway.server import ServeOptions as Options
from gateway.server import makeService as makeGateway

__all__ = ["Options", "makeService", "prepareService"]

log = Logger()


def prepareService(options: Options, reactor) -> ListeningTree:
    """
    The gateway's service tree for C{options}, or an exit: with status 2
    and one line if a value cannot be used, with status 0 once the
    configuration is printed for C{--print-config}.
    """
    try:
        root = makeGateway(options, reactor)
    except usage.UsageError as error:
        options.exitWithUsageError(error)
    if options["print-config"]:
        print(options.describeConfiguration(), flush=True)
        raise SystemExit(0)
    return root


def makeService(options: Options) -> ListeningTree:
    """
    The gateway's service tree on the global reactor, for twist and twistd.
    """
    from twisted.internet import reactor

    if options["workers"] > 1:
        options.exitWithUsageError(
            OptionError("workers", "twist and twistd run one process; for several, use xform serve --workers")
        )
    root = prepareService(options, reactor)
    gc.freeze()  # as xform serve does (gateway.cli.main)
    if options["log-format"] != "text":
        log.warn(
            "--log-format {logFormat} is for xform serve: the runner writes this log "
            "(twist --log-format json, say)",
            logFormat=options["log-format"],
        )
    return root
