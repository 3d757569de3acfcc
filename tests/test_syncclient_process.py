"""
The synchronous client, C{xform transform} and C{xform transforms}, as a
process against every scheme it speaks: the list of transforms from a real
gateway over each scheme that can list them, and each scheme's failure
modes against a port that refuses and a server that never answers.
"""

import pytest
from twisted.internet.task import Clock

from gateway.syncclient import LISTERS, TRANSFORMERS
from service import builtinCatalogue
from tests.helpers import freePort, silentServer, xform

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


@pytest.mark.parametrize("scheme", TRANSFORMERS)
def test_refusedAndSilentServers(scheme):
    """
    A port nothing listens on is refused, and a server that accepts the
    connection but never answers is given up on after C{--timeout}: each
    with one line and exit status 1, whatever the scheme.
    """
    refused = f"{scheme}://127.0.0.1:{freePort()}"
    status, out, err = xform("transform", "cummingsify", "-s", refused, input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {refused}: connection refused (is the gateway running?)\n")

    with silentServer() as silent:
        address = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}"
        status, out, err = xform("transform", "cummingsify", "-s", address, "-t", "0.5", input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {address}: no reply within 0.5 seconds\n")
