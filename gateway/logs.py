"""
The log of C{xform serve} and of the other commands: C{twisted.logger}
events, written as text or as JSON lines, filtered by level.

Below C{debug}, the libraries' own chatter is left out: Twisted's lines
about each port and factory (C{<Factory> starting on <port>}, C{(TCP Port N
Closed)}, C{Starting factory}), twisted.web's C{Timing out client}, and
Autobahn's lines about each connection.  What the gateway itself says is
kept, and so is every warning and error of Twisted's, every error of
Autobahn's.

A JSON line is one object: C{timestamp} (ISO 8601, UTC), C{level},
C{namespace}, C{message} (the rendered text), C{traceback} for a failure,
and the event's own fields (C{peer}, C{error}, ...; one named as one of
those keys is left out); addresses are written C{host:port}.

A worker of C{xform serve --workers} writes its number in each line: the
field C{worker} of a JSON line, C{worker N: } before the text of a line of
text.
"""

import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    formatEventAsClassicLogText,
    globalLogBeginner,
)

from protocols.addresses import describeAddress

#: The names accepted by C{--log-level}.
LEVELS = {level.name: level for level in LogLevel.iterconstants()}

#: The formats of C{--log-format}.
FORMATS = ("text", "json")

#: The namespaces of the libraries, each with the lowest level of theirs
#: that is written below C{debug}; C{log_legacy} holds what Twisted still
#: logs through C{twisted.python.log}.
QUIET_BELOW = {
    "log_legacy": LogLevel.warn,
    "twisted": LogLevel.warn,
    "autobahn": LogLevel.error,
}

#: Keys of an event that are not its own fields: the logger's, and those
#: of events from C{twisted.python.log}.
_NOT_FIELDS = frozenset({"message", "isError", "system", "time", "format", "failure", "why"})


def quietLibraries(event: dict) -> PredicateResult:
    """
    A predicate for L{FilteringLogObserver}: leave out the events of a
    library in L{QUIET_BELOW} under its level.
    """
    namespace = event.get("log_namespace") or ""
    for library, lowest in QUIET_BELOW.items():
        if namespace == library or namespace.startswith(library + "."):
            if event.get("log_level", LogLevel.info) < lowest:
                return PredicateResult.no
    return PredicateResult.maybe


def _jsonValue(value: object) -> object:
    """
    A field that JSON cannot hold as it is: an address as C{host:port},
    anything else as its text.
    """
    if hasattr(value, "host") and hasattr(value, "port"):
        return describeAddress(value)
    return str(value)


def jsonLine(event: dict, worker: int | None = None) -> str:
    """
    C{event} as one line of JSON, ended by a newline.

    @param worker: the number of the worker writing it, if it is one.
    """
    level = event.get("log_level")
    line = {
        "timestamp": datetime.fromtimestamp(event.get("log_time", 0), tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": level.name if level is not None else "info",
        "namespace": event.get("log_namespace", ""),
        "message": formatEvent(event),
    }
    if worker is not None:
        line["worker"] = worker
    failure = event.get("log_failure")
    if failure is not None:
        line["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if not key.startswith("log_") and key not in _NOT_FIELDS:
            line.setdefault(key, value)
    return json.dumps(line, default=_jsonValue, ensure_ascii=False) + "\n"


def textLine(event: dict, worker: int | None = None) -> str:
    """
    C{event} as a line of text (and its traceback, if it has one), as
    Twisted writes it: the time, C{[namespace#level]} and the text, which a
    worker starts with C{worker N: }.
    """
    if worker is not None and (text := formatEvent(event)):
        event = {
            **event,
            "log_format": "worker {log_worker}: {log_text}",
            "log_worker": worker,
            "log_text": text,
        }
    return formatEventAsClassicLogText(event)


def gatewayObserver(
    levelName: str, format: str = "text", stream: TextIO = sys.stderr, worker: int | None = None
) -> ILogObserver:
    """
    An observer writing the events of C{levelName} and above to C{stream},
    as text or JSON lines, without the libraries' chatter unless
    C{levelName} is C{debug}.

    @param worker: the number of the worker writing them, if it is one.
    """
    lines = jsonLine if format == "json" else textLine
    writer = FileLogObserver(stream, lambda event: lines(event, worker))
    predicates = [LogLevelFilterPredicate(defaultLogLevel=LEVELS[levelName])]
    if LEVELS[levelName] > LogLevel.debug:
        predicates.append(quietLibraries)
    return FilteringLogObserver(writer, predicates)


def startLogging(
    levelName: str,
    format: str = "text",
    stream: TextIO = sys.stderr,
    discardBuffer: bool = False,
    worker: int | None = None,
) -> None:
    """
    Send log events to C{stream} through a L{gatewayObserver}.

    @param discardBuffer: drop the events logged before, instead of writing
        them out first.
    @param worker: the number of the worker writing them, if it is one.
    """
    globalLogBeginner.beginLoggingTo(
        [gatewayObserver(levelName, format, stream, worker)],
        discardBuffer=discardBuffer,
        redirectStandardIO=False,
    )
