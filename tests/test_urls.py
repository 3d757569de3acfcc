"""
Server URLs, the scheme table they are read by, and the choice of a client
by their scheme.
"""

import pytest
from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from gateway.clients import transformClient
from gateway.poetryclient import parsePoetryServer
from gateway.schemes import SCHEMES
from gateway.urls import ServerURL, parseServerURL
from protocols.interfaces import ITransformClient, ITransformLister


def test_tlsSchemes():
    """
    Each protocol has a scheme over TLS, with the default port the docs
    give: the same as in the clear for netstrings and AMP, 8443 for the web
    face.
    """
    assert {name: scheme.defaultPort for name, scheme in SCHEMES.items() if scheme.tls} == {
        "netstrings": 10001,
        "amps": 10002,
        "wss": 8443,
        "https": 8443,
    }
    for name, scheme in SCHEMES.items():
        if scheme.tls:
            plain = SCHEMES[name.removesuffix("s")]
            assert (scheme.listener, scheme.path, scheme.transform) == (
                plain.listener,
                plain.path,
                plain.transform,
            )
    assert parseServerURL("wss://localhost") == ServerURL("wss", "localhost", 8443)


def test_parse():
    assert parseServerURL("netstring://127.0.0.1:7") == ServerURL("netstring", "127.0.0.1", 7)
    assert parseServerURL("amp://example.org") == ServerURL("amp", "example.org", 10002)
    assert parseServerURL("ws://[::1]:80/ws") == ServerURL("ws", "::1", 80, "/ws")
    assert str(parseServerURL("ws://[::1]:80/ws")) == "ws://[::1]:80/ws"


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=SCHEMES)
def test_defaultPortAndPath(scheme):
    """
    A URL without a port gets its scheme's; a path is only added where the
    scheme has one (C{ws://host:port/ws}).
    """
    server = parseServerURL(f"{scheme.name}://example.org")
    assert server == ServerURL(scheme.name, "example.org", scheme.defaultPort)
    assert server.withDefaultPath() == f"{scheme.name}://example.org:{scheme.defaultPort}{scheme.path}"


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1:10001", "gopher://host", "netstring://", "netstring://host:99999", "netstring://:1"],
)
def test_invalid(text):
    with pytest.raises(ValueError):
        parseServerURL(text)


def test_invalidNamesEveryScheme():
    with pytest.raises(ValueError) as raised:
        parseServerURL("gopher://host")
    assert str(raised.value) == (
        "'gopher://host' is not a server URL "
        "(netstring://HOST:PORT, netstrings://HOST:PORT, amp://HOST:PORT, amps://HOST:PORT, "
        "ws://HOST:PORT/ws, wss://HOST:PORT/ws, http://HOST:PORT, https://HOST:PORT)"
    )


def test_clientForAnUnknownScheme():
    with pytest.raises(ValueError) as raised:
        transformClient(reactor, ServerURL("gopher", "host", 70))
    assert "gopher://" in str(raised.value)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_everyClientIsATransformClient(scheme):
    """
    The client of every scheme provides L{ITransformClient}; those that can
    list the transforms have the listing of L{ITransformLister} too.
    """
    client = transformClient(MemoryReactorClock(), ServerURL(scheme, "127.0.0.1", 1))
    assert verifyObject(ITransformClient, client)
    if scheme == "amp":
        assert verifyObject(ITransformLister, client)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10003", ServerURL("poetry", "127.0.0.1", 10003)),
        ("example.org:7", ServerURL("poetry", "example.org", 7)),
        ("[::1]:10003", ServerURL("poetry", "::1", 10003)),
    ],
)
def test_parsePoetryServer(text, expected):
    assert parsePoetryServer(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0", "65536", "host", "host:", ":10003", "::1:10003", "host:1/poem", "a@host:1"]
)
def test_invalidPoetryServer(text):
    with pytest.raises(ValueError):
        parsePoetryServer(text)
