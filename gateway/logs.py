"""
Logging of the command line tools: C{twisted.logger} events as text on
standard error, filtered by level.
"""

import sys
from typing import TextIO

from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

#: The names accepted by C{--log-level}.
LEVELS = {level.name: level for level in LogLevel.iterconstants()}


def startLogging(levelName: str, stream: TextIO = sys.stderr, discardBuffer: bool = False) -> None:
    """
    Send log events of C{levelName} and above to C{stream}.

    @param discardBuffer: drop the events logged before, instead of writing
        them out first.
    """
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[levelName])
    observer = FilteringLogObserver(textFileLogObserver(stream), [predicate])
    globalLogBeginner.beginLoggingTo([observer], discardBuffer=discardBuffer, redirectStandardIO=False)
