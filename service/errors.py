"""
The typed errors of the transform service.

Every failure a caller can meet is one of these classes.  Each carries a
wire-neutral C{name} (C{unknown-transform}, C{bad-request}, ...); the protocol
adapters translate that name into their own error form (a closed connection,
an AMP error code, a JSON-RPC error, an HTTP status) and nothing else does.
"""


class TransformError(Exception):
    """
    Base class of every error the service reports to a caller.

    @cvar name: the error's name, identical on every wire protocol.
    """

    name = "transform-error"

    @property
    def message(self) -> str:
        """
        The human-readable explanation given when the error was raised.
        """
        return str(self.args[0]) if self.args else self.name


class UnknownTransform(TransformError):
    """
    The requested transform (or one step of a pipeline) is not in the
    catalogue.
    """

    name = "unknown-transform"


class BadRequest(TransformError):
    """
    The request is malformed: an empty or over-long transform name, an empty
    pipeline step, a poem that is not valid UTF-8, a framing error.
    """

    name = "bad-request"


class PoemTooLarge(TransformError):
    """
    The poem is larger than the service's maximum poem size.
    """

    name = "poem-too-large"


class TransformFailed(TransformError):
    """
    The transform itself failed: it raised, returned something that is not a
    poem, or produced a poem over the size limit.  The cause is logged by the
    service; callers only learn that the transform failed.
    """

    name = "transform-failed"


class TransformTimeout(TransformError):
    """
    The request did not finish before its deadline; any late result is
    discarded.
    """

    name = "timeout"


class Overloaded(TransformError):
    """
    The service already has as many requests in flight as it allows.
    """

    name = "overloaded"


#: Every error class a caller can meet, by wire name.
ERRORS_BY_NAME = {
    error.name: error
    for error in (
        UnknownTransform,
        BadRequest,
        PoemTooLarge,
        TransformFailed,
        TransformTimeout,
        Overloaded,
    )
}
