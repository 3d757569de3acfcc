"""
The transform service: the one object every protocol factory shares.

L{TransformService.transform} takes a transform name and a poem and returns a
L{Deferred} that fires with the new poem or fails with one of the errors of
L{service.errors}.  It enforces the limits that hold for every protocol --
the maximum poem size, the number of requests in flight and the deadline of
each request -- so that a protocol adapter only decodes, calls and encodes.
"""

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from service.catalogue import Catalogue, Transform
from service.deadline import withDeadline
from service.errors import (
    BadRequest,
    Overloaded,
    PoemTooLarge,
    TransformError,
    TransformFailed,
)

#: Runs C{function(poem)} somewhere other than the reactor thread and returns
#: a L{Deferred} firing, in the reactor thread, with the result.
Offloader = Callable[[Callable[[str], str], str], "Deferred[str]"]


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
        L{Overloaded}.
    @ivar offloadBytes: poems at least this large are given to the
        offloader, when there is one, for the transforms that allow it.
    """

    maxPoemBytes: int = 1024 * 1024
    deadline: float = 5.0
    maxInFlight: int = 256
    offloadBytes: int = 32 * 1024

    def __post_init__(self) -> None:
        if self.maxPoemBytes < 1 or self.maxInFlight < 1 or self.offloadBytes < 0:
            raise ValueError("limits must be positive")
        if not self.deadline > 0:
            raise ValueError("the deadline must be positive")


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
        raise BadRequest("the poem is not valid Unicode text (it holds a lone surrogate)") from None


class TransformService:
    """
    Transform poems with the transforms of a catalogue, within limits.

    @ivar catalogue: the transforms on offer.
    @ivar limits: the L{Limits} enforced.
    @ivar inFlight: the number of requests running now.
    """

    log = Logger()

    def __init__(
        self,
        catalogue: Catalogue,
        clock: IReactorTime,
        limits: Limits = Limits(),
        offload: Offloader | None = None,
    ) -> None:
        """
        @param clock: measures deadlines.
        @param offload: runs offloadable transforms of large poems off the
            reactor thread; without one, everything runs in the caller's
            thread.
        """
        self.catalogue = catalogue
        self.limits = limits
        self.inFlight = 0
        self._clock = clock
        self._offload = offload

    def transforms(self) -> list[Transform]:
        """
        The catalogue's entries, for listing to clients.
        """
        return list(self.catalogue)

    def transform(self, name: str, poem: str) -> "Deferred[str]":
        """
        Apply the transform (or pipeline) called C{name} to C{poem}.

        The name and the poem are checked before anything runs.  Cancelling
        the returned L{Deferred} abandons the request.

        @return: a L{Deferred} firing with the new poem, or failing with
            L{UnknownTransform}, L{BadRequest}, L{PoemTooLarge},
            L{TransformFailed}, L{TransformTimeout} or L{Overloaded}.
        """
        try:
            steps = self.catalogue.pipeline(name)
            self._checkSize(poem, "the poem")
            if self.inFlight >= self.limits.maxInFlight:
                raise Overloaded(f"{self.inFlight} requests are already in flight; try again later")
        except TransformError as error:
            return fail(error)

        self.inFlight += 1
        result = Deferred.fromCoroutine(self._run(steps, poem))
        if not result.called:  # a result already here needs no deadline
            withDeadline(result, self.limits.deadline, self._clock, "no result")
        result.addBoth(self._finished)
        return result

    def _checkSize(self, poem: str, what: str) -> None:
        size = utf8Length(poem)
        if size > self.limits.maxPoemBytes:
            raise PoemTooLarge(f"{what} is {size} bytes; the limit is {self.limits.maxPoemBytes} bytes")

    async def _run(self, steps: tuple[Transform, ...], poem: str) -> str:
        for step in steps:
            try:
                poem = await self._apply(step, poem)
            except (TransformError, CancelledError):
                raise
            except Exception:
                self.log.failure("transform {transform!r} raised", transform=step.name)
                raise TransformFailed(f"transform {step.name!r} failed") from None
            if not isinstance(poem, str):
                self.log.error(
                    "transform {transform!r} returned {kind}, not a poem",
                    transform=step.name,
                    kind=type(poem).__name__,
                )
                raise TransformFailed(f"transform {step.name!r} failed")
        try:
            self._checkSize(poem, "the transformed poem")
        except TransformError as badResult:
            raise TransformFailed(badResult.message) from None
        return poem

    def _apply(self, step: Transform, poem: str) -> "Deferred[str]":
        if self._offload is not None and step.offloadable and len(poem) >= self.limits.offloadBytes:
            return self._offload(step.function, poem)
        return maybeDeferred(step.function, poem)

    def _finished(self, result: object) -> object:
        self.inFlight -= 1
        return result
