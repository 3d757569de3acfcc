"""
The transform service: the one object every protocol factory shares.

L{TransformService.transform} takes a transform name and a poem and returns a
L{Deferred} that fires with the new poem or fails with one of the errors of
L{service.errors}.  It enforces the limits that hold for every protocol --
the maximum poem size, the number of requests in flight (in all, per
connection and per client address), the deadline of each request and the
reactor time one turn of work may take -- so that a protocol adapter only
decodes, calls and encodes.

How a request runs:

  - When every step is a synchronous transform of known cost
    (L{Transform.slicing}) and together they cost less than a turn's budget
    (L{Limits.turnBudget}, a millisecond), the steps run at once and the
    answer is an already-fired L{Deferred}: no coroutine, no deadline, no
    bookkeeping.  Most requests are such.
  - Otherwise, from the first step that cannot be done at once, the steps
    run in a coroutine, which counts as in flight and has the deadline: a
    large poem for a transform with a L{Slicing} is worked through a few
    lines per unit of work of a L{Cooperator} that gives each turn of the
    reactor its budget, so that other clients are served, deadlines fire
    and abandoned requests stop between slices; any other runs as it is,
    and may return a L{Deferred}.  No step is handed to worker threads:
    Python's lock on the interpreter let a thread hold the reactor for tens
    of milliseconds on a large poem, where slices hold it for about one
    (docs/performance.md).
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    fail,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from service.catalogue import PREFIX_SEPARATOR, Catalogue, Transform
from service.deadline import withDeadline
from service.errors import (
    BadRequest,
    Overloaded,
    PoemTooLarge,
    TransformError,
    TransformFailed,
    sizeMessage,
)
from service.slicing import (
    TURN_BUDGET,
    UTF8_CHARS_PER_MILLISECOND,
    runInSlices,
    turnCooperator,
    utf8LengthInSlices,
)

_RESULT_NOT_UNICODE = "the transformed poem is not valid Unicode text"

#: Unless set, one connection may have this share of L{Limits.maxInFlight}
#: in flight, and one client address that share.
CONNECTION_SHARE = 1 / 8
PEER_SHARE = 1 / 2


class Caller(NamedTuple):
    """
    Who asks: what the service counts a request against, for the
    per-connection and per-address shares of the requests in flight.  A
    named tuple: the cheapest record to make, once per connection.

    A protocol makes one per connection, when it is made, and passes it with
    every request of that connection::

        self.caller = Caller(self.transport.getPeer().host, self)
        ...
        self.factory.service.transform(name, poem, self.caller)

    @ivar peer: the client's address, without its port (C{"192.0.2.7"}):
        the connections of one address share its cap.  Behind a proxy every
        client has the proxy's address, unless the protocol learns the
        client's own (PROXY protocol, C{X-Forwarded-For} from a trusted
        proxy).
    @ivar connection: the connection itself (the protocol instance, or the
        HTTP channel), compared by identity; any hashable object that lives
        as long as the connection.
    """

    peer: str
    connection: object


@dataclass(frozen=True)
class Limits:
    """
    The limits the service enforces for every protocol.

    @ivar maxPoemBytes: the largest poem accepted or produced, in bytes of
        UTF-8.
    @ivar deadline: seconds a request may take, whole pipeline included;
        after that the caller gets L{TransformTimeout} and a late result is
        discarded.
    @ivar maxInFlight: how many requests may run at once; one more gets
        L{Overloaded}.  Requests answered at once (see L{TransformService})
        are refused past it too, but never count.
    @ivar maxInFlightPerConnection: how many of those one L{Caller}'s
        connection may have; by default an eighth of C{maxInFlight} (32 of
        256: as many as a pipelining client needs to keep a link busy, and
        a flood on one connection leaves seven eighths to the others).
    @ivar maxInFlightPerPeer: how many one L{Caller}'s address may have,
        all its connections together; by default half of C{maxInFlight}
        (128 of 256: one address, with many connections, can use the
        gateway fully, but never leave the others nothing).
    @ivar turnBudget: seconds of reactor time one turn of inline work may
        take: requests that cost less are answered at once, larger ones
        are worked through in slices of about that cost.
    """

    maxPoemBytes: int = 1024 * 1024
    deadline: float = 5.0
    maxInFlight: int = 256
    maxInFlightPerConnection: int | None = None
    maxInFlightPerPeer: int | None = None
    turnBudget: float = TURN_BUDGET

    def __post_init__(self) -> None:
        if self.maxInFlightPerConnection is None:
            object.__setattr__(self, "maxInFlightPerConnection", _share(self.maxInFlight, CONNECTION_SHARE))
        if self.maxInFlightPerPeer is None:
            object.__setattr__(self, "maxInFlightPerPeer", _share(self.maxInFlight, PEER_SHARE))
        counts = [self.maxPoemBytes, self.maxInFlight, self.maxInFlightPerConnection, self.maxInFlightPerPeer]
        if min(counts) < 1:
            raise ValueError("limits must be positive")
        if not self.deadline > 0:
            raise ValueError("the deadline must be positive")
        if not 0 <= self.turnBudget < math.inf:
            raise ValueError("the turn budget must be a number of seconds, 0 or more")


def _share(total: int, share: float) -> int:
    return max(1, int(total * share))


def utf8Length(text: str) -> int:
    """
    The size of C{text} in UTF-8, without encoding it when it is ASCII.

    @raise BadRequest: if C{text} holds a lone surrogate, which no UTF-8
        encoder may write (a JSON string can carry one).
    """
    if text.isascii():
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest.loneSurrogate() from None


class TransformService:
    """
    Transform poems with the transforms of a catalogue, within limits.

    @ivar catalogue: the transforms on offer.
    @ivar limits: the L{Limits} enforced.
    @ivar inFlight: the number of requests running now (those answered at
        once never count).
    @ivar refusals: how many requests each cap on requests in flight
        refused as L{Overloaded}: C{in-flight} (the total),
        C{in-flight-per-connection} and C{in-flight-per-peer}.
    @ivar slicedSteps: how many transform steps ran in slices.
    """

    log = Logger()

    def __init__(
        self,
        catalogue: Catalogue,
        clock: IReactorTime,
        limits: Limits = Limits(),
    ) -> None:
        """
        @param clock: measures deadlines and schedules the slices of work.
        """
        self.catalogue = catalogue
        self.limits = limits
        self.inFlight = 0
        self.refusals = {"in-flight": 0, "in-flight-per-connection": 0, "in-flight-per-peer": 0}
        self.slicedSteps = 0
        self._clock = clock
        self._cooperator = turnCooperator(clock, limits.turnBudget)
        self._utf8SliceChars = max(1, int(limits.turnBudget * 1000 * UTF8_CHARS_PER_MILLISECOND))
        self._inFlightByConnection: dict[object, int] = {}
        self._inFlightByPeer: dict[str, int] = {}

    def transforms(self) -> list[Transform]:
        """
        The catalogue's own entries.
        """
        return list(self.catalogue)

    def listing(self) -> "Deferred[list[tuple[str, str]]]":
        """
        Everything a client may call, for listing to clients: the
        catalogue's entries, then what each delegated prefix's lister lists
        (an upstream's transforms), as C{(name, description)}.  A lister
        that fails leaves one entry, C{<prefix>:*}, that says so, rather
        than failing the listing.

        @return: a L{Deferred} firing with the entries, at once when no
            prefix has a lister.
        """
        entries = [(entry.name, entry.description) for entry in self.catalogue]
        listers = self.catalogue.listers
        if not listers:
            return succeed(entries)

        def listed(prefix: str, lister) -> "Deferred[list[tuple[str, str]]]":
            return maybeDeferred(lister).addErrback(self._listerFailed, prefix)

        delegated = gatherResults([listed(prefix, lister) for prefix, lister in listers.items()])
        return delegated.addCallback(lambda lists: entries + [entry for each in lists for entry in each])

    def _listerFailed(self, failure, prefix: str) -> list[tuple[str, str]]:
        self.log.failure("listing the transforms of prefix {prefix!r} failed", failure, prefix=prefix)
        return [(f"{prefix}{PREFIX_SEPARATOR}*", "unavailable: listing its transforms failed")]

    def transform(self, name: str, poem: str, caller: Caller | None = None) -> "Deferred[str]":
        """
        Apply the transform (or pipeline) called C{name} to C{poem}.

        The name, the poem and the caps on requests in flight are checked
        before anything runs.  Cancelling the returned L{Deferred} abandons
        the request: the work stops before its next slice, offloaded work
        that has not started never does, and the step that is running is
        cancelled.

        @param caller: who asks, to hold them to their connection's and
            their address's share of the requests in flight; without one,
            only the total cap applies.
        @return: a L{Deferred} firing with the new poem, or failing with
            L{UnknownTransform}, L{BadRequest}, L{PoemTooLarge},
            L{TransformFailed}, L{TransformTimeout} or L{Overloaded}.  It
            has fired already when the answer was cheap enough to make at
            once.
        """
        try:
            result = self.transformEagerly(name, poem, caller)
        except TransformError as error:
            return fail(error)
        return succeed(result) if isinstance(result, str) else result

    def transformEagerly(self, name: str, poem: str, caller: Caller | None = None) -> "str | Deferred[str]":
        """
        L{transform}, for a protocol that answers at once what is made at
        once: a poem made at once is returned as it is, and a request
        refused at once raises its error, rather than coming in an
        already-fired L{Deferred}.  A request that takes longer gets the
        L{Deferred} L{transform} gives.

        @return: the new poem, or a L{Deferred} of it.
        @raise TransformError: what L{transform}'s L{Deferred} would have
            failed with at once.
        """
        limit = self.limits.maxPoemBytes
        steps = self.catalogue.pipeline(name)
        size = self._sizeAtOnce(poem)
        if size is None and len(poem) > limit:  # each character is a byte or more
            raise PoemTooLarge.forSize(len(poem), limit, exact=False)
        if size is not None and size > limit:
            raise PoemTooLarge.forSize(size, limit)
        self._admit(caller)
        done = 0
        if size is not None:
            done, poem = self._atOnce(steps, poem)
            if done == len(steps):
                resultSize = self._resultSizeAtOnce(poem)
                if resultSize is not None:
                    return self._checkedResult(poem, resultSize)
                # else measured in slices, after no more steps

        self._enter(caller)
        result = Deferred.fromCoroutine(self._run(steps[done:], poem, measured=size is not None))
        if not result.called:  # a result already here needs no deadline
            withDeadline(result, self.limits.deadline, self._clock, "no result")
        result.addBoth(self._finished, caller)
        return result

    def _atOnce(self, steps: tuple[Transform, ...], poem: str) -> tuple[int, str]:
        """
        Run the first C{steps} at once, as long as each is of known cost and
        they cost less than a turn's budget together.

        @return: how many steps ran, and the poem they made.
        @raise TransformFailed: if a step raised or gave no poem.
        """
        budget = self.limits.turnBudget
        done = 0
        for step in steps:
            slicing = step.slicing
            if slicing is None:
                break
            budget -= slicing.seconds(poem)
            if budget < 0:
                break
            poem = self._called(step, poem)
            done += 1
        return done, poem

    def _admit(self, caller: Caller | None) -> None:
        """
        @raise Overloaded: if the caller's connection, the caller's address
            or the service has as many requests in flight as it may.
        """
        limits = self.limits
        if caller is not None:
            count = self._inFlightByConnection.get(caller.connection, 0)
            if count >= limits.maxInFlightPerConnection:
                self.refusals["in-flight-per-connection"] += 1
                raise Overloaded(
                    f"this connection already has {count:,} requests in flight, the most one "
                    "connection may have; wait for an answer before asking again"
                )
            count = self._inFlightByPeer.get(caller.peer, 0)
            if count >= limits.maxInFlightPerPeer:
                self.refusals["in-flight-per-peer"] += 1
                raise Overloaded(
                    f"address {caller.peer} already has {count:,} requests in flight, the most one "
                    "address may have; try again later"
                )
        if self.inFlight >= limits.maxInFlight:
            self.refusals["in-flight"] += 1
            raise Overloaded(
                f"the gateway already has {self.inFlight:,} requests in flight, the most it takes "
                "at once (--max-in-flight); try again later"
            )

    def _enter(self, caller: Caller | None) -> None:
        self.inFlight += 1
        if caller is not None:
            byConnection, byPeer = self._inFlightByConnection, self._inFlightByPeer
            byConnection[caller.connection] = byConnection.get(caller.connection, 0) + 1
            byPeer[caller.peer] = byPeer.get(caller.peer, 0) + 1

    def _finished(self, result: object, caller: Caller | None) -> object:
        self.inFlight -= 1
        if caller is not None:
            for counts, key in [
                (self._inFlightByConnection, caller.connection),
                (self._inFlightByPeer, caller.peer),
            ]:
                counts[key] -= 1
                if not counts[key]:
                    del counts[key]
        return result

    def _called(self, step: Transform, poem: str) -> str:
        """
        C{step} applied to C{poem} in one call.

        @raise TransformFailed: if it raised (logged) or gave no poem.
        """
        try:
            result = step.function(poem)
        except TransformError:
            raise
        except Exception:
            raise self._raised(step) from None
        return self._checkedStep(step, result)

    def _raised(self, step: Transform) -> TransformFailed:
        """
        Log the exception being handled, which C{step} raised, and make the
        caller's error.
        """
        self.log.failure("transform {transform!r} raised", transform=step.name)
        return TransformFailed(f"transform {step.name!r} failed")

    def _checkedStep(self, step: Transform, result: object) -> str:
        if not isinstance(result, str):
            self.log.error(
                "transform {transform!r} returned {kind}, not a poem",
                transform=step.name,
                kind=type(result).__name__,
            )
            raise TransformFailed(f"transform {step.name!r} failed")
        return result

    def _sizeAtOnce(self, poem: str) -> int | None:
        """
        The size of C{poem} in UTF-8, or C{None} if measuring it would take
        more than a turn's budget.

        @raise BadRequest: if C{poem} holds a lone surrogate.
        """
        if poem.isascii():
            return len(poem)
        if len(poem) > self._utf8SliceChars:
            return None
        return utf8Length(poem)

    async def _size(self, poem: str) -> int:
        """
        The size of C{poem} in UTF-8, measured in slices if it is long.

        @raise BadRequest: if C{poem} holds a lone surrogate.
        """
        size = self._sizeAtOnce(poem)
        if size is not None:
            return size
        try:
            return await runInSlices(self._cooperator, utf8LengthInSlices(poem, self._utf8SliceChars))
        except UnicodeEncodeError:
            raise BadRequest.loneSurrogate() from None

    def _resultSizeAtOnce(self, poem: str) -> int | None:
        """
        L{_sizeAtOnce} for a transformed poem.

        @raise TransformFailed: if C{poem} holds a lone surrogate.
        """
        try:
            return self._sizeAtOnce(poem)
        except BadRequest:
            raise TransformFailed(_RESULT_NOT_UNICODE) from None

    def _checkedResult(self, poem: str, size: int) -> str:
        """
        @param size: the size of the transformed C{poem} in UTF-8.
        @raise TransformFailed: if that is over the size limit.
        """
        if size > self.limits.maxPoemBytes:
            raise TransformFailed(sizeMessage("the transformed poem", size, self.limits.maxPoemBytes))
        return poem

    async def _run(self, steps: tuple[Transform, ...], poem: str, measured: bool) -> str:
        """
        Measure the poem unless it was C{measured}, apply the C{steps}, and
        measure their result.
        """
        if not measured:
            size = await self._size(poem)
            if size > self.limits.maxPoemBytes:
                raise PoemTooLarge.forSize(size, self.limits.maxPoemBytes)
        for step in steps:
            try:
                result = await self._apply(step, poem)
            except (TransformError, CancelledError):
                raise
            except Exception:
                raise self._raised(step) from None
            poem = self._checkedStep(step, result)
        size = self._resultSizeAtOnce(poem)
        if size is None:
            try:
                size = await self._size(poem)
            except BadRequest:
                raise TransformFailed(_RESULT_NOT_UNICODE) from None
        return self._checkedResult(poem, size)

    def _apply(self, step: Transform, poem: str) -> "Deferred[str]":
        if step.slicing is not None:
            self.slicedSteps += 1
            sliceChars = step.slicing.sliceChars(poem, self.limits.turnBudget)
            return runInSlices(self._cooperator, step.slicing.run(poem, sliceChars))
        return maybeDeferred(step.function, poem)
