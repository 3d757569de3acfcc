"""
One error, one sentence: a poem over the limit is described in the same
words over every protocol, by a real gateway, whether the protocol refuses
it at its own framing or the service does.
"""

import pytest

from tests.helpers import PLAIN_SCHEMES

#: A poem of 5 MB, five times the default limit.
FIVE_MEGABYTES = "A" * 5_000_000

#: What every protocol says of it.
SENTENCE = "the poem is 5,000,000 bytes; this gateway accepts at most 1,048,576 (--max-poem-bytes)"


@pytest.mark.parametrize("scheme", [name for name in PLAIN_SCHEMES if name != "netstring"])
def test_theSameSentenceOverEveryProtocol(fullGateway, xformHere, scheme):
    """
    AMP, WebSocket JSON-RPC and HTTP answer with the error's name and the
    sentence, which the client prints.
    """
    status, out, err = xformHere(
        "transform", "cummingsify", "-s", fullGateway.url(scheme), input=FIVE_MEGABYTES.encode()
    )
    assert (status, out) == (1, b"")
    assert err == f"xform: {fullGateway.url(scheme)}: poem-too-large: {SENTENCE}\n"


def test_theSameSentenceInTheNetstringLog(fullGateway, xformHere):
    """
    A netstring server cannot answer an error; it logs the same sentence.
    """
    status, out, err = xformHere(
        "transform", "cummingsify", "-s", fullGateway.url("netstring"), input=FIVE_MEGABYTES.encode()
    )
    assert (status, out) == (1, b"")
    assert "closed the connection without a reply" in err
    fullGateway.waitForLog(lambda: fullGateway.logged(f"poem-too-large: {SENTENCE}"))
