"""
Upstream transform servers: the gateway as a gateway.

C{xform serve --upstream remote=netstring://127.0.0.1:10011} offers every
transform of that server, through every protocol of this gateway, as
C{remote:NAME}: the service's catalogue delegates the prefix C{remote} to an
L{Upstream}, which forwards C{NAME} and the poem through the client that
L{gateway.clients} has for the URL's scheme (the Part 13 C{TransformProxy}
for netstrings).  Upstream transforms join pipelines like local ones
(C{remote:cummingsify|reverse}), under the same deadline.

An upstream that is down, slow or closes without answering gives the caller
C{transform-failed} or C{timeout}, and leaves one line in the log.

The upstream's transforms are listed with the gateway's own
(L{Upstream.listing}, which the catalogue's listing asks): as the upstream
lists them, under the prefix, when its protocol can list them (AMP,
WebSocket, HTTP), kept for L{LISTING_KEPT} seconds; as one entry
C{PREFIX:*} that says so when it cannot (netstrings), or when it is
unavailable (kept for L{FAILURE_KEPT} seconds only).

Each L{Upstream} is a service of the gateway's tree: when the gateway stops,
it disconnects its client, closing the connection that the AMP client keeps
open between questions.
"""

from functools import partial

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.clients import describeFailure
from gateway.schemes import SCHEMES
from gateway.urls import ServerURL
from protocols.interfaces import ITransformClient, ITransformLister
from service.catalogue import PREFIX_SEPARATOR, Transform
from service.errors import TransformError, TransformFailed

#: Seconds an upstream's list of transforms is kept once it answered.
LISTING_KEPT = 30.0

#: Seconds an upstream that did not list its transforms is not asked again.
FAILURE_KEPT = 5.0


class Upstream(Service):
    """
    A transform server whose transforms this gateway offers under a prefix;
    a service that disconnects its client when it stops.

    @ivar prefix: the prefix its transforms are called by here.
    @ivar server: where it listens.
    @ivar client: talks to it.
    @ivar clock: measures how long a listing is kept.
    """

    log = Logger()

    def __init__(self, prefix: str, server: ServerURL, client: ITransformClient, clock: IReactorTime) -> None:
        self.prefix = prefix
        self.server = server
        self.client = client
        self.clock = clock
        self._listed: list[tuple[str, str]] = []
        self._listedUntil = -1.0
        self._waiting: list[Deferred[list[tuple[str, str]]]] = []

    def stopService(self) -> "Deferred[None]":
        """
        Disconnect the client (see L{gateway.clients}).

        @return: a L{Deferred} that fires once its connection is closed.
        """
        super().stopService()
        return self.client.disconnect()

    def resolve(self, name: str) -> Transform:
        """
        The catalogue entry for the upstream's transform C{name}.  Whether
        the upstream has it is for the upstream to say.
        """
        return Transform(
            f"{self.prefix}{PREFIX_SEPARATOR}{name}",
            f"{name} at {self.server}",
            partial(self.xform, name),
        )

    def xform(self, name: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with the upstream's C{name}.

        @return: a L{Deferred}, made and fired here, firing with the new
            poem, or failing with the upstream's own error (a
            L{TransformError}) or L{TransformFailed} for any other failure
            (refused, unreachable, garbled).  Cancelling it fails it with
            L{CancelledError} and drops the call, whatever the dropped call
            then reports (a name lookup cut short says C{DNSLookupError}).
        """
        call = self.client.xform(name, poem)

        def abandon(result: "Deferred[str]") -> None:
            result.errback(CancelledError())
            call.cancel()

        result: Deferred[str] = Deferred(abandon)
        call.addBoth(self._settle, name, result)
        return result

    def _settle(self, outcome: "str | Failure", name: str, result: "Deferred[str]") -> None:
        if result.called:
            return  # the caller gave up
        if not isinstance(outcome, Failure):
            result.callback(outcome)
            return
        reason = describeFailure(outcome)
        self.log.warn(
            "upstream {prefix} ({server}) failed {transform!r}: {reason}",
            prefix=self.prefix,
            server=str(self.server),
            transform=name,
            reason=reason,
        )
        if not outcome.check(TransformError):
            outcome = Failure(TransformFailed(f"upstream {self.prefix} ({self.server}): {reason}"))
        result.errback(outcome)

    def listing(self) -> "Deferred[list[tuple[str, str]]]":
        """
        The upstream's transforms as this gateway offers them:
        C{(PREFIX:name, description)} as the upstream lists them, or one
        entry C{(PREFIX:*, why)} when it cannot list them or did not.  Asked
        once for everyone who asks meanwhile, and kept for a while.

        @return: a L{Deferred} that fires with the entries and never fails;
            cancelling it leaves the question to the others who asked.
        """
        if not ITransformLister.providedBy(self.client):
            why = SCHEMES[self.server.scheme].cannotList
            return succeed(
                [(self._named("*"), f"any transform of {self.server}, which cannot list them: {why}")]
            )
        if self.clock.seconds() < self._listedUntil:
            return succeed(self._listed)
        waiter: Deferred[list[tuple[str, str]]] = Deferred(self._waiting.remove)
        self._waiting.append(waiter)
        if len(self._waiting) == 1:
            self.client.listTransforms().addCallbacks(self._answered, self._unavailable)
        return waiter

    def _named(self, name: str) -> str:
        return f"{self.prefix}{PREFIX_SEPARATOR}{name}"

    def _answered(self, entries: list[tuple[str, str]]) -> None:
        self._keep([(self._named(name), description) for name, description in entries], LISTING_KEPT)

    def _unavailable(self, failure: Failure) -> None:
        reason = describeFailure(failure)
        self.log.warn(
            "upstream {prefix} ({server}) did not list its transforms: {reason}",
            prefix=self.prefix,
            server=str(self.server),
            reason=reason,
        )
        self._keep(
            [(self._named("*"), f"unavailable: {self.server} did not list its transforms ({reason})")],
            FAILURE_KEPT,
        )

    def _keep(self, entries: list[tuple[str, str]], seconds: float) -> None:
        self._listed, self._listedUntil = entries, self.clock.seconds() + seconds
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(entries)
