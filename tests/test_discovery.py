"""
Discovery: the gateway lists its upstreams' transforms with its own, over
every protocol that lists, as each upstream lists them, and says so when an
upstream cannot list them or is unavailable.
"""

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from gateway.clients import transformClient
from gateway.schemes import SCHEMES
from gateway.server import LISTENERS
from gateway.upstream import FAILURE_KEPT, LISTING_KEPT, Upstream
from gateway.urls import ServerURL
from protocols.interfaces import ITransformLister
from service import TransformService, builtinCatalogue
from tests.helpers import PLAIN_SCHEMES, GatewayProcess, captureLogs, freePort


@implementer(ITransformLister)
class RecordingLister:
    """
    A client whose listings the test answers: each call of
    L{listTransforms} is a L{Deferred} in L{calls}.
    """

    timeout = 10.0

    def __init__(self):
        self.calls: list[Deferred] = []

    def listTransforms(self):
        self.calls.append(Deferred())
        return self.calls[-1]

    def xform(self, transform, poem):
        return fail(NotImplementedError())

    def disconnect(self):
        return succeed(None)


SERVER = ServerURL("amp", "upstream.example", 10002)


class UpstreamListingTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.client = RecordingLister()
        self.upstream = Upstream("up", SERVER, self.client, self.clock)
        self.events = captureLogs(self)

    def test_listedUnderThePrefix(self):
        """
        The upstream's transforms are listed with their descriptions, their
        names under the prefix.
        """
        listing = self.upstream.listing()
        self.client.calls[0].callback([("cummingsify", "lowercase"), ("reverse", "last line first")])
        self.assertEqual(
            self.successResultOf(listing),
            [("up:cummingsify", "lowercase"), ("up:reverse", "last line first")],
        )

    def test_askedOnceForEveryoneWaiting(self):
        """
        Callers who ask while a listing is on its way share it; one who
        gives up leaves it to the others.
        """
        first, second, third = (self.upstream.listing() for _ in range(3))
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertEqual(len(self.client.calls), 1)
        self.client.calls[0].callback([("a", "b")])
        self.assertEqual(self.successResultOf(first), [("up:a", "b")])
        self.assertEqual(self.successResultOf(third), [("up:a", "b")])

    def test_keptForAWhile(self):
        self.upstream.listing()
        self.client.calls[0].callback([("a", "b")])
        self.clock.advance(LISTING_KEPT - 0.1)
        self.assertEqual(self.successResultOf(self.upstream.listing()), [("up:a", "b")])
        self.assertEqual(len(self.client.calls), 1)
        self.clock.advance(0.1)
        self.upstream.listing()
        self.assertEqual(len(self.client.calls), 2)

    def test_unavailable(self):
        """
        An upstream that does not list its transforms is listed as
        unavailable, with the reason, and logged once; it is asked again
        sooner than a listing that came is.
        """
        listing = self.upstream.listing()
        self.client.calls[0].errback(ConnectionRefusedError())
        self.assertEqual(
            self.successResultOf(listing),
            [
                (
                    "up:*",
                    "unavailable: amp://upstream.example:10002 did not list its transforms (connection refused)",
                )
            ],
        )
        self.assertEqual(len([event for event in self.events if "did not list" in event["log_format"]]), 1)
        self.clock.advance(FAILURE_KEPT)
        self.upstream.listing()
        self.assertEqual(len(self.client.calls), 2)

    def test_aProtocolThatCannotList(self):
        """
        A netstring upstream cannot list its transforms: it is listed as one
        entry that says so, and never asked.
        """
        server = ServerURL("netstring", "127.0.0.1", 10011)
        reactor = MemoryReactorClock()
        upstream = Upstream("tut", server, transformClient(reactor, server), reactor)
        self.assertEqual(
            self.successResultOf(upstream.listing()),
            [
                (
                    "tut:*",
                    "any transform of netstring://127.0.0.1:10011, which cannot list them: "
                    "the netstring protocol has no request for the list of transforms",
                )
            ],
        )


class ServiceListingTests(SynchronousTestCase):
    def test_ownThenDelegated(self):
        """
        The service lists its own transforms, then each delegated prefix's,
        in the order they were delegated.
        """
        clock = Clock()
        catalogue = builtinCatalogue(clock)
        later = Deferred()
        catalogue.delegate("one", lambda name: None, lambda: later)
        catalogue.delegate("two", lambda name: None, lambda: succeed([("two:x", "y")]))
        listing = TransformService(catalogue, clock).listing()
        self.assertNoResult(listing)
        later.callback([("one:a", "b")])
        own = [(entry.name, entry.description) for entry in catalogue]
        self.assertEqual(self.successResultOf(listing), [*own, ("one:a", "b"), ("two:x", "y")])

    def test_aListerThatFails(self):
        """
        A lister that fails leaves an entry saying so, and a logged failure,
        not a failed listing.
        """
        clock = Clock()
        catalogue = builtinCatalogue(clock)
        catalogue.delegate("bad", lambda name: None, lambda: fail(ZeroDivisionError()))
        entries = self.successResultOf(TransformService(catalogue, clock).listing())
        self.assertEqual(entries[-1], ("bad:*", "unavailable: listing its transforms failed"))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


@pytest.fixture(scope="module")
def frontGateway(fullGateway):
    """
    A gateway with three upstreams: C{up}, another gateway over AMP; C{tut},
    a netstring server, which cannot list; C{down}, nothing at all.
    """
    upstreams = {
        "up": fullGateway.url("amp"),
        "tut": f"netstring://127.0.0.1:{freePort()}",
        "down": f"http://127.0.0.1:{freePort()}",
    }
    arguments = [
        argument for prefix, url in upstreams.items() for argument in ("--upstream", f"{prefix}={url}")
    ]
    with GatewayProcess(*arguments, listeners=tuple(LISTENERS)) as process:
        process.upstreams = upstreams
        yield process


@pytest.mark.parametrize("scheme", [name for name in PLAIN_SCHEMES if SCHEMES[name].listTransforms])
def test_xformTransformsListsTheUpstreams(frontGateway, xformHere, scheme):
    """
    C{xform transforms}, over every protocol that lists, shows the
    gateway's own transforms, the AMP upstream's under its prefix, the
    netstring upstream as one that cannot list, and the one that is down as
    unavailable.
    """
    status, out, err = xformHere("transforms", "-s", frontGateway.url(scheme))
    assert (status, err) == (0, "")
    lines = out.decode().splitlines()
    names = [line.split()[0] for line in lines]
    own = [entry.name for entry in builtinCatalogue(None)]
    assert names == [*own, *(f"up:{name}" for name in own), "tut:*", "down:*"]
    assert lines[len(own)].split(None, 1)[1] == "lowercase everything, as e. e. cummings might"
    assert lines[-2].split(None, 1)[1] == (
        f"any transform of {frontGateway.upstreams['tut']}, which cannot list them: "
        "the netstring protocol has no request for the list of transforms"
    )
    assert lines[-1].split(None, 1)[1] == (
        f"unavailable: {frontGateway.upstreams['down']} did not list its transforms (connection refused)"
    )
