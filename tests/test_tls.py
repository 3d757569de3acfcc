"""
TLS listeners, with certificates made in the test (L{tests.certificates}): a
key or certificate the gateway cannot use stops it at start-up with one
line.
"""

import pytest

from tests.certificates import makeTLSFiles


@pytest.fixture(scope="module")
def tlsFiles(tmp_path_factory):
    return makeTLSFiles(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("ssl:0:privateKey={missing}", "cannot read {missing}: No such file or directory"),
        (
            "ssl:0:privateKey={key}",
            "cannot load its certificate (certKey=) and private key (privateKey=) from PEM files "
            "(OpenSSL: no start line)",
        ),
        (
            "ssl:0:privateKey={elsewhereKey}:certKey={certificate}",
            "its certificate (certKey=) and private key (privateKey=) do not match",
        ),
    ],
)
def test_unusableKeyOrCertificate(tlsFiles, tmp_path, xformHere, monkeypatch, endpoint, message):
    """
    A key or certificate that cannot be read, is not PEM, or does not match
    the other stops the gateway at start-up with one line naming the
    option (and its variable), exit status 2.
    """
    names = {
        "missing": tmp_path / "missing.pem",
        "key": tlsFiles.key,
        "elsewhereKey": tlsFiles.elsewhereKey,
        "certificate": tlsFiles.certificate,
    }
    endpoint, message = endpoint.format(**names), message.format(**names)
    status, out, err = xformHere("serve", "--netstring", "off", "--amp", "off", "--web", endpoint)
    assert (status, out) == (2, b"")
    assert err == f"xform serve: --web: invalid endpoint {endpoint!r}: {message}; see 'xform serve --help'\n"
    monkeypatch.setenv("XFORM_AMP", endpoint)
    status, out, err = xformHere("serve", "--netstring", "off", "--web", "off")
    assert err == (
        f"xform serve: --amp: invalid endpoint {endpoint!r}: {message} (from XFORM_AMP); "
        "see 'xform serve --help'\n"
    )
