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

Each L{Upstream} is a service of the gateway's tree: when the gateway stops,
it disconnects its client, closing the connection that the AMP client keeps
open between questions.
"""

from functools import partial

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.clients import describeFailure
from gateway.urls import ServerURL
from protocols.interfaces import ITransformClient
from service.catalogue import PREFIX_SEPARATOR, Transform
from service.errors import TransformError, TransformFailed


class Upstream(Service):
    """
    A transform server whose transforms this gateway offers under a prefix;
    a service that disconnects its client when it stops.

    @ivar prefix: the prefix its transforms are called by here.
    @ivar server: where it listens.
    @ivar client: talks to it.
    """

    log = Logger()

    def __init__(self, prefix: str, server: ServerURL, client: ITransformClient) -> None:
        self.prefix = prefix
        self.server = server
        self.client = client

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
            offloadable=False,
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
