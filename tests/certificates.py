"""
Certificates for the TLS tests, made with C{cryptography} in a directory of
the test's: a certificate authority, a server certificate it signs for
C{localhost}, C{127.0.0.1} and C{::1}, one it signs for another host only,
and a second authority that signed nothing, whose trust must get a client
nowhere.  No network, no openssl command.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long the certificates are valid, from a day before they are made.
VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class TLSFiles:
    """
    The PEM files of the TLS tests.

    @ivar ca: the certificate authority that signed L{certificate}.
    @ivar certificate: the server's certificate.
    @ivar key: the server's private key.
    @ivar elsewhereCertificate: a certificate that L{ca} signed for
        C{elsewhere.example} only.
    @ivar elsewhereKey: its private key.
    @ivar otherCA: an authority that signed none of them.
    """

    ca: Path
    certificate: Path
    key: Path
    elsewhereCertificate: Path
    elsewhereKey: Path
    otherCA: Path

    def endpoint(self, port: int | str = 0, elsewhere: bool = False) -> str:
        """
        An C{ssl:} server endpoint string on 127.0.0.1 with the server's
        certificate and key, or (C{elsewhere}) those made for another host.
        """
        key, certificate = (
            (self.elsewhereKey, self.elsewhereCertificate) if elsewhere else (self.key, self.certificate)
        )
        return f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={certificate}"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _authority(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """
    A self-signed certificate authority, as strict verifiers want it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


#: The names of the server's certificate.
LOCAL_NAMES = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
]


def _serverCertificate(
    caKey: ec.EllipticCurvePrivateKey, ca: x509.Certificate, names: list[x509.GeneralName]
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """
    A server certificate for C{names} (the first one also its subject's
    name), signed by C{ca}.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(str(names[0].value)))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(caKey.public_key()), critical=False)
        .sign(caKey, hashes.SHA256())
    )
    return key, certificate


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _pemKey(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def makeTLSFiles(directory: Path) -> TLSFiles:
    """
    Make the certificates and the key in C{directory}.
    """
    caKey, ca = _authority("xform-gateway test CA")
    key, certificate = _serverCertificate(caKey, ca, LOCAL_NAMES)
    elsewhereKey, elsewhere = _serverCertificate(caKey, ca, [x509.DNSName("elsewhere.example")])
    _, otherCA = _authority("another CA")
    files = TLSFiles(
        ca=directory / "ca.pem",
        certificate=directory / "cert.pem",
        key=directory / "key.pem",
        elsewhereCertificate=directory / "elsewhere-cert.pem",
        elsewhereKey=directory / "elsewhere-key.pem",
        otherCA=directory / "other-ca.pem",
    )
    files.ca.write_bytes(_pem(ca))
    files.certificate.write_bytes(_pem(certificate))
    files.key.write_bytes(_pemKey(key))
    files.elsewhereCertificate.write_bytes(_pem(elsewhere))
    files.elsewhereKey.write_bytes(_pemKey(elsewhereKey))
    files.otherCA.write_bytes(_pem(otherCA))
    return files
