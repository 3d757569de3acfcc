"""
Worker threads that keep heavy transforms off the reactor thread.
"""

import threading
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool


class WorkerThreads(Service):
    """
    A pool of threads, running while this service runs, for the service's
    offloadable transforms of large poems.  Python's GIL still serialises
    the work, but the reactor keeps its turn every few milliseconds instead
    of waiting for a whole transform, so other clients are not stalled.

    Work waits in the pool's queue while every thread is busy.  Work whose
    caller gave up (its L{Deferred} cancelled: a deadline, a client gone)
    is dropped when its turn comes, without running, so abandoned requests
    never delay the next ones.  Work that has started runs to its end, as a
    Python thread cannot be interrupted; its result is discarded.
    """

    def __init__(self, reactor: IReactorFromThreads, size: int) -> None:
        self.setName("workers")
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name="xform-workers")

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        super().stopService()
        self._pool.stop()

    def offload(self, function: Callable[[str], str], poem: str) -> "Deferred[str]":
        """
        Run C{function(poem)} in a worker thread; the result arrives in the
        reactor thread.  Cancelling the L{Deferred} fails it with
        L{CancelledError} at once; if the work has not started yet, it never
        does.
        """
        abandoned = threading.Event()

        def unlessAbandoned() -> str:
            if abandoned.is_set():
                raise CancelledError("abandoned before it started")
            return function(poem)

        def deliver(outcome: "str | Failure") -> None:
            if result.called:  # the caller gave up: discard it
                return
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)

        result: Deferred[str] = Deferred(lambda _: abandoned.set())
        deferToThreadPool(self._reactor, self._pool, unlessAbandoned).addBoth(deliver)
        return result
