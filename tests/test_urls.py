"""
Server URLs, and the choice of a client by their scheme.
"""

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase

from gateway.clients import transformClient
from gateway.poetryclient import parsePoetryServer
from gateway.urls import ServerURL, parseServerURL


class ServerURLTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(parseServerURL("netstring://127.0.0.1:7"), ServerURL("netstring", "127.0.0.1", 7))
        self.assertEqual(parseServerURL("amp://example.org"), ServerURL("amp", "example.org", 10002))
        self.assertEqual(parseServerURL("ws://[::1]:80/ws"), ServerURL("ws", "::1", 80, "/ws"))
        self.assertEqual(str(parseServerURL("ws://[::1]:80/ws")), "ws://[::1]:80/ws")

    def test_invalid(self):
        for text in [
            "127.0.0.1:10001",
            "gopher://host",
            "netstring://",
            "netstring://host:99999",
            "netstring://:1",
        ]:
            self.assertRaises(ValueError, parseServerURL, text)

    def test_clientForAnUnknownScheme(self):
        error = self.assertRaises(ValueError, transformClient, reactor, ServerURL("gopher", "host", 70))
        self.assertIn("gopher://", str(error))


class PoetryServerAddressTests(SynchronousTestCase):
    def test_parse(self):
        self.assertEqual(parsePoetryServer("10003"), ServerURL("poetry", "127.0.0.1", 10003))
        self.assertEqual(parsePoetryServer("example.org:7"), ServerURL("poetry", "example.org", 7))
        self.assertEqual(parsePoetryServer("[::1]:10003"), ServerURL("poetry", "::1", 10003))

    def test_invalid(self):
        for text in ["", "0", "65536", "host", "host:", ":10003", "::1:10003", "host:1/poem", "a@host:1"]:
            self.assertRaises(ValueError, parsePoetryServer, text)
