"""
The worker threads: work whose caller gave up is dropped before it starts.
"""

import threading

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.trial.unittest import TestCase

from gateway.workers import WorkerThreads


class AbandonedWorkTests(TestCase):
    """
    On a real pool of one thread and the real reactor.
    """

    def setUp(self):
        self.workers = WorkerThreads(reactor, 1)
        self.workers.startService()
        self.release = threading.Event()
        self.addCleanup(self.workers.stopService)
        self.addCleanup(self.release.set)  # whatever happens, the thread can end

    def busy(self, poem: str) -> str:
        self.release.wait()
        return poem.upper()

    async def test_abandonedQueuedWorkNeverRuns(self):
        """
        Sixteen jobs queued behind a busy thread, then abandoned, never run:
        the next job is answered as soon as the thread is free.
        """
        ran = []
        running = self.workers.offload(self.busy, "busy")
        abandoned = [self.workers.offload(lambda poem: ran.append(poem) or poem, str(n)) for n in range(16)]
        for job in abandoned:
            job.cancel()
            self.failureResultOf(job, CancelledError)
        nextJob = self.workers.offload(str.upper, "next")
        self.release.set()
        self.assertEqual(await running, "BUSY")
        self.assertEqual(await nextJob, "NEXT")
        self.assertEqual(ran, [])

    async def test_startedWorkRunsToItsEnd(self):
        """
        Work that has started cannot be interrupted: it runs to its end and
        its result is discarded; the caller has its L{CancelledError} at once.
        """
        finished = []
        isRunning = Deferred()

        def busy(poem):
            reactor.callFromThread(isRunning.callback, None)
            finished.append(self.busy(poem))
            return finished[-1]

        started = self.workers.offload(busy, "busy")
        await isRunning
        started.cancel()
        self.failureResultOf(started, CancelledError)
        self.release.set()
        self.assertEqual(await self.workers.offload(str.upper, "next"), "NEXT")
        self.assertEqual(finished, ["BUSY"])
