"""
The synchronous client, C{xform transform} and C{xform transforms}, as a
process against every scheme it speaks: the list of transforms from a real
gateway over each scheme that can list them.
"""

import pytest
from twisted.internet.task import Clock

from gateway.syncclient import LISTERS
from service import builtinCatalogue
from tests.helpers import xform

#: What C{xform transforms} prints for the built-in catalogue.
CATALOGUE = list(builtinCatalogue(Clock()))
WIDTH = max(len(entry.name) for entry in CATALOGUE)
LISTING = "".join(f"{entry.name:<{WIDTH}}  {entry.description}\n" for entry in CATALOGUE).encode()


@pytest.mark.parametrize("scheme", LISTERS)
def test_listTransforms(fullGateway, scheme):
    assert xform("transforms", "--server", fullGateway.url(scheme)) == (0, LISTING, "")


def test_netstringCannotList(fullGateway):
    server = fullGateway.url("netstring")
    status, out, err = xform("transforms", "--server", server)
    assert (status, out) == (1, b"")
    assert err == (
        f"xform: {server}: cannot list the transforms: the netstring protocol has no request for "
        "the list of transforms; use amp://HOST:PORT, ws://HOST:PORT/ws, http://HOST:PORT\n"
    )
