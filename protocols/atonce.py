"""
Results that may be there at once: what the protocol adapters do with the
L{Deferred} of a service that answers cheap requests at once.

L{TransformService.transform} returns a L{Deferred} that has already fired
when the transform was cheap enough to run in the call -- most requests --
and each callback added to a L{Deferred} costs about as much as that whole
call.  L{then} gives such a result to the adapter's callbacks at once, as
plain calls, and adds them to any other L{Deferred}: one code path for
both.
"""

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


def then(
    result: Any,
    callback: Callable[..., Any],
    errback: Callable[..., Any],
    callbackArgs: tuple = (),
    errbackArgs: tuple = (),
) -> Any:
    """
    Give C{result} -- a value, a L{Failure}, or a L{Deferred} of a value --
    to C{callback}, or a failure to C{errback}, as L{Deferred.addCallbacks}
    would, but at once when the result is already there.

    A L{Deferred} that has fired has its result taken out of it (it is left
    with C{None}, so a failure in it is handled); then, as for a value or a
    L{Failure}, what the callback returns is returned, and what it raises
    is raised.  To any other L{Deferred} the callbacks are added, and it is
    returned.
    """
    if isinstance(result, Deferred):
        if not result.called or result.paused:
            return result.addCallbacks(callback, errback, callbackArgs, None, errbackArgs)
        outcome = []
        result.addBoth(outcome.append)  # runs now: the Deferred has fired and waits for nothing
        result = outcome[0]
    if isinstance(result, Failure):
        return errback(result, *errbackArgs)
    return callback(result, *callbackArgs)
