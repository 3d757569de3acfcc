"""
Asynchronous transform clients, chosen by the scheme of a server URL (see
L{gateway.schemes}): what the poetry client and the upstream transforms
talk to other servers with.  Every client provides
L{protocols.interfaces.ITransformClient}.  Over TLS, the server's
certificate is verified against the system's certificate authorities, or
against those of a L{CAFile} only.
"""

from dataclasses import dataclass

from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from gateway.schemes import SCHEMES
from gateway.urls import ServerURL
from protocols.interfaces import ITransformClient
from service.errors import TransformError


@dataclass(frozen=True)
class CAFile:
    """
    The certificate authorities of a file, trusted instead of the system's:
    the value of C{--ca-file} for the asynchronous clients.

    @ivar path: the file, as given.
    @ivar trustRoot: its certificates, for C{optionsForClientTLS}: what
        C{trustRootFromCertificates} makes of them.
    """

    path: str
    trustRoot: object

    def __str__(self) -> str:
        return self.path


def readCAFile(path: str) -> CAFile:
    """
    The certificates in the PEM file at C{path} (one or several).

    @raise ValueError: with a message fit for a user, if the file cannot be
        read or holds no certificate.
    """
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import load_pem_x509_certificates
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(path, "rb") as file:
            certificates = load_pem_x509_certificates(file.read())
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except ValueError:
        raise ValueError(f"{path} holds no certificate in PEM form") from None
    return CAFile(
        path,
        trustRootFromCertificates(
            [Certificate.load(each.public_bytes(Encoding.DER)) for each in certificates]
        ),
    )


def transformClient(
    reactor, server: ServerURL, timeout: float = 10.0, caFile: CAFile | None = None
) -> ITransformClient:
    """
    A client for C{server}, over the protocol its scheme names.

    @param timeout: seconds each exchange may take, connecting included.
    @param caFile: the certificate authorities trusted over TLS, instead of
        the system's.
    @raise ValueError: if no client speaks that scheme.
    """
    try:
        scheme = SCHEMES[server.scheme]
    except KeyError:
        raise ValueError(f"the {server.scheme}:// scheme has no client; use {', '.join(SCHEMES)}") from None
    return scheme.makeClient(reactor, server, timeout, caFile and caFile.trustRoot)


def describeFailure(failure: Failure) -> str:
    """
    Why a client's call (or any connection) failed, in a few words for a
    user: the error's wire name and message for the errors of
    L{service.errors}, C{connection refused}, C{TLS failed: ...} (with
    C{certificate verify failed} for a certificate that is refused), or
    the error's own message.
    """
    from OpenSSL.SSL import Error as TLSError
    from service_identity import VerificationError

    if failure.check(TransformError):
        return f"{failure.value.name}: {failure.value.message}"
    if failure.check(ConnectionRefusedError):
        return "connection refused"
    if failure.check(VerificationError):
        # Signed by an authority it trusts, but for other names.
        return "TLS failed: certificate verify failed: the certificate does not name the server's host"
    if failure.check(TLSError):
        return f"TLS failed: {_openSSLReasons(failure.value)}"
    return failure.getErrorMessage()


def _openSSLReasons(error: Exception) -> str:
    """
    What pyOpenSSL's C{error} says, without its library and function
    names: C{certificate verify failed}, C{Unexpected EOF}.
    """
    details = error.args[0] if error.args else ""
    if isinstance(details, list):  # OpenSSL's queue of (library, function, reason)
        return ", ".join(str(entry[-1]) for entry in details)
    return str(error.args[-1] if error.args else error)
