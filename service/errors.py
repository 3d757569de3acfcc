"""
The typed errors of the transform service.

Every failure a caller can meet is one of these classes.  Each carries a
wire-neutral C{name} (C{unknown-transform}, C{bad-request}, ...); the protocol
adapters translate that name into their own error form (a closed connection,
an AMP error code, a JSON-RPC error, an HTTP status) and nothing else does.

Each carries a message too, worded here once for every protocol: a protocol
that refuses a poem at its own framing, before the service sees it, says
so with L{PoemTooLarge.forSize}, in the same words as the service.
"""


def sizeMessage(what: str, size: int, limit: int, exact: bool = True) -> str:
    """
    Say that C{what} is too large, naming the option that sets the limit:
    C{the poem is 5,242,905 bytes; this gateway accepts at most 1,048,576
    (--max-poem-bytes)}.

    @param size: the size of C{what} in bytes or, when C{exact} is false, a
        size it is known to be over.
    """
    measured = f"{size:,} bytes" if exact else f"over {size:,} bytes"
    return f"{what} is {measured}; this gateway accepts at most {limit:,} (--max-poem-bytes)"


def quoted(name: str) -> str:
    """
    Quote a client-supplied name for a message: escaped, and cut short.
    """
    return repr(name[:64] + ("…" if len(name) > 64 else ""))


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

    @classmethod
    def forName(cls, name: str, closest: list[str]) -> "UnknownTransform":
        """
        The error for the unknown C{name}, with the C{closest} names of the
        catalogue as a hint: C{unknown transform 'cumingsify'; did you mean
        'cummingsify'?}.  The name is quoted escaped and cut short.
        """
        hint = f"; did you mean {' or '.join(map(repr, closest))}?" if closest else ""
        return cls(f"unknown transform {quoted(name)}{hint}")


class BadRequest(TransformError):
    """
    The request is malformed: an empty or over-long transform name, an empty
    pipeline step, a poem that is not valid UTF-8, a framing error.
    """

    name = "bad-request"

    @classmethod
    def notUTF8(cls, position: int, what: str = "the request") -> "BadRequest":
        """
        The error for bytes that are not UTF-8, the first bad one at
        C{position} of C{what}.
        """
        return cls(f"{what} is not valid UTF-8 (byte {position:,})")

    @classmethod
    def loneSurrogate(cls) -> "BadRequest":
        """
        The error for a poem holding a lone surrogate, which a JSON string can
        carry but no UTF-8 encoder may write.
        """
        return cls("the poem is not valid Unicode text (it holds a lone surrogate)")


class PoemTooLarge(TransformError):
    """
    The poem is larger than the service's maximum poem size.
    """

    name = "poem-too-large"

    @classmethod
    def forSize(cls, size: int, limit: int, exact: bool = True) -> "PoemTooLarge":
        """
        The error for a poem of C{size} bytes of UTF-8 when at most C{limit}
        are accepted, in the words every protocol uses.

        @param exact: false when only a lower bound of the size is known (a
            body cut off once over the limit): the message then says that
            the poem is over C{size} bytes.
        """
        return cls(sizeMessage("the poem", size, limit, exact))


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
    The service already has as many requests in flight as it allows, in all
    or for this caller's connection or address; the message says which.
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
