"""
The origin policy of the web face, on plain header values.
"""

from twisted.trial.unittest import SynchronousTestCase

from protocols.origins import OriginPolicy, normalizeOrigin


class NormalizeOriginTests(SynchronousTestCase):
    def test_canonicalForm(self):
        self.assertEqual(normalizeOrigin("http://127.0.0.1:8080"), "http://127.0.0.1:8080")
        self.assertEqual(normalizeOrigin("HTTP://LocalHost"), "http://localhost:80")
        self.assertEqual(normalizeOrigin("https://example.org/"), "https://example.org:443")
        self.assertEqual(normalizeOrigin("http://[::1]:8080"), "http://[::1]:8080")

    def test_notOrigins(self):
        for text in [
            "null",
            "",
            "example.org",
            "ftp://example.org",
            "file:///etc/passwd",
            "http://example.org/path",
            "http://example.org?q",
            "http://user@example.org",
            "http://example.org:99999",
            "http://",
        ]:
            self.assertRaises(ValueError, normalizeOrigin, text)


class OriginPolicyTests(SynchronousTestCase):
    def setUp(self):
        self.policy = OriginPolicy()

    def test_noOriginIsNotABrowser(self):
        self.assertTrue(self.policy.allows(None, "127.0.0.1:8080", secure=False))
        self.assertTrue(self.policy.allows(None, None, secure=False))

    def test_sameOriginByAddress(self):
        for origin, host in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://localhost:8080", "localhost:8080"),
            ("http://localhost", "localhost:80"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("http://192.0.2.5:8080", "192.0.2.5:8080"),
            ("http://app.localhost:8080", "app.localhost:8080"),
        ]:
            self.assertTrue(self.policy.allows(origin, host, secure=False), origin)
        self.assertTrue(self.policy.allows("https://127.0.0.1:8443", "127.0.0.1:8443", secure=True))

    def test_sameOriginOverTLS(self):
        """
        Over TLS the gateway's own page is at an C{https} origin (port 443
        if the C{Host} names none); the same host and port over C{http} is
        another origin, and so is C{https} when the request came in the
        clear.
        """
        self.assertTrue(self.policy.allows("https://localhost", "localhost", secure=True))
        self.assertTrue(self.policy.allows("https://[::1]:8443", "[::1]:8443", secure=True))
        self.assertFalse(self.policy.allows("http://127.0.0.1:8443", "127.0.0.1:8443", secure=True))
        self.assertFalse(self.policy.allows("https://127.0.0.1:8443", "127.0.0.1:8443", secure=False))

    def test_crossOrigin(self):
        for origin, host in [
            ("http://evil.example", "127.0.0.1:8080"),
            ("http://127.0.0.1:8081", "127.0.0.1:8080"),
            ("http://localhost:8080", "127.0.0.1:8080"),
            ("https://127.0.0.1:8080", "127.0.0.1:8080"),
            ("null", "127.0.0.1:8080"),
            ("file://", "127.0.0.1:8080"),
            ("http://127.0.0.1:8080", None),
            ("http://127.0.0.1:8080", "bad host"),
        ]:
            self.assertFalse(self.policy.allows(origin, host, secure=False), (origin, host))

    def test_dnsRebinding(self):
        """
        A page whose own name was made to resolve to the gateway looks
        same-origin by its headers; a name only counts once allowed.
        """
        self.assertFalse(self.policy.allows("http://evil.example:8080", "evil.example:8080", secure=False))
        allowing = OriginPolicy(["http://poems.example.org:8080"])
        self.assertTrue(
            allowing.allows("http://poems.example.org:8080", "poems.example.org:8080", secure=False)
        )

    def test_allowedOrigins(self):
        policy = OriginPolicy(["https://poems.example.org", "HTTP://Other.example:8000/"])
        self.assertTrue(policy.allows("https://poems.example.org", "127.0.0.1:8080", secure=False))
        self.assertTrue(policy.allows("https://poems.example.org:443", "127.0.0.1:8080", secure=False))
        self.assertTrue(policy.allows("http://other.example:8000", "127.0.0.1:8080", secure=False))
        self.assertFalse(policy.allows("http://poems.example.org", "127.0.0.1:8080", secure=False))
        self.assertTrue(policy.allows("http://127.0.0.1:8080", "127.0.0.1:8080", secure=False))

    def test_invalidAllowedOrigin(self):
        self.assertRaises(ValueError, OriginPolicy, ["poems.example.org"])
