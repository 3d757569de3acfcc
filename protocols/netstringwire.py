"""
The netstring protocol's bytes (see L{protocols.netstring}), without Twisted:
the framing (L{encodeNetstring}, L{NetstringDecoder}) and a request's
payload, C{<transform>.<poem>} (L{encodeRequest}, L{decodeRequest}).  The
Twisted protocols, the blocking client of L{gateway.syncclient} and the
poetry protocol share them.
"""

from protocols.wirebuffer import keepReceived
from service.errors import BadRequest

#: Separates the transform name from the poem in a request's payload.
SEPARATOR = b"."


#: How far into a request's payload its C{.} is looked for first: past the
#: longest transform name (256 characters) in UTF-8.
_DOT_SEARCH = 1025

#: The most digits a length may have, whatever the limit: enough to read the
#: length of a netstring that is too long, so that the refusal can say how
#: long it is.
MAX_LENGTH_DIGITS = 20


class NetstringError(Exception):
    """
    The bytes received are not a valid netstring, or announce one over the
    size limit.
    """


class NetstringTooLong(NetstringError):
    """
    A netstring's length is over the limit.

    @ivar length: the length it announces, in bytes.
    @ivar head: the bytes of its payload received with the length, which
        the decoder does not keep.
    """

    def __init__(self, length: int, limit: int, head: bytes) -> None:
        super().__init__(f"its length, {length:,} bytes, is over the limit of {limit:,} bytes")
        self.length = length
        self.head = head


def netstringHeader(length: int) -> bytes:
    """
    What comes before a payload of C{length} bytes; a comma comes after it.
    """
    return b"%d:" % length


def encodeNetstring(payload: bytes) -> bytes:
    """
    Frame C{payload} as one netstring.
    """
    return b"%d:%s," % (len(payload), payload)


class NetstringDecoder:
    """
    A strict, incremental netstring parser: feed it bytes as they arrive and
    pop complete payloads.

    It refuses a length with a leading zero or anything but digits, a length
    over C{maxLength} as soon as its colon arrives (L{NetstringTooLong}, after
    which the decoder is done), a length of more than L{MAX_LENGTH_DIGITS}
    digits, and a payload not followed by a comma.

    It copies each payload once, from the bytes received (see
    L{keepReceived<protocols.wirebuffer.keepReceived>}); L{popView} not at
    all.
    """

    __slots__ = ("maxLength", "_buffer", "_offset", "_payloadLength")  # one per connection

    def __init__(self, maxLength: int) -> None:
        """
        @param maxLength: the largest payload accepted, in bytes.
        """
        self.maxLength = maxLength
        self._buffer: bytes | bytearray = b""
        self._offset = 0  # where the bytes not parsed yet start in _buffer
        self._payloadLength: int | None = None

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        self._buffer, self._offset = keepReceived(self._buffer, self._offset, data), 0

    def pop(self) -> bytes | None:
        """
        Take the next complete payload.

        @return: the payload, or C{None} if no complete netstring has arrived
            yet.
        @raise NetstringTooLong: if its length is over the limit.
        @raise NetstringError: if the bytes cannot be a valid netstring.
        """
        payload = self.popView()
        return payload if payload is None or isinstance(payload, bytes) else payload.tobytes()

    def popView(self) -> bytes | memoryview | None:
        """
        L{pop}, without copying a payload gathered over several reads: it is
        a view of the bytes kept (valid until the decoder is fed again),
        since copying a large payload would hold the reactor.  A payload
        that came in one read is sliced from it (a copy of 64 KiB at most,
        cheaper than a view for a small one).
        """
        buffer, start = self._buffer, self._offset
        if self._payloadLength is None:
            if start == len(buffer):
                return None  # nothing left: the usual end of a read
            colon = buffer.find(b":", start, start + MAX_LENGTH_DIGITS + 1)
            digits = bytes(buffer[start : start + MAX_LENGTH_DIGITS + 1 if colon < 0 else colon])
            self._checkLength(digits, complete=colon >= 0)
            if colon < 0:
                return None
            length = int(digits)
            start = self._offset = colon + 1
            if length > self.maxLength:
                head = bytes(buffer[start:])
                self._buffer, self._offset = b"", 0
                raise NetstringTooLong(length, self.maxLength, head)
            self._payloadLength = length
        end = start + self._payloadLength
        if len(buffer) <= end:
            return None
        if buffer[end] != ord(","):
            raise NetstringError(f"the {self._payloadLength}-byte payload is not followed by a comma")
        self._offset = end + 1
        self._payloadLength = None
        if isinstance(buffer, bytes):
            return buffer[start:end]
        return memoryview(buffer)[start:end]

    def _checkLength(self, digits: bytes, complete: bool) -> None:
        if not digits.isdigit():
            if digits or complete:
                raise NetstringError("it does not start with a decimal length and a colon")
            return
        if len(digits) > 1 and digits.startswith(b"0"):
            raise NetstringError("its length has a leading zero")
        if len(digits) > MAX_LENGTH_DIGITS:
            raise NetstringError(f"its length has more than {MAX_LENGTH_DIGITS} digits")


def encodeRequest(transform: str, poem: str) -> bytes:
    """
    The payload of a request for C{transform} of C{poem}.

    @raise BadRequest: if the transform name holds a C{.}, which would move
        the split.
    """
    name = transform.encode("utf-8")
    if SEPARATOR in name:
        raise BadRequest(f"a transform name cannot contain {SEPARATOR.decode()!r}")
    return name + SEPARATOR + poem.encode("utf-8")


def decodeRequest(payload: bytes | memoryview) -> tuple[str, str]:
    """
    Split a request's payload into the transform name and the poem, without
    copying the poem's bytes before decoding them when C{payload} is a view.

    @raise BadRequest: if there is no C{.} or the payload is not UTF-8.
    """
    # A view has no find(): only its first bytes, where the dot of any name
    # that can be valid is, are copied to look for it; the rest only for a
    # name too long, to be refused.  (bytes() of bytes is no copy.)
    dot = bytes(payload[:_DOT_SEARCH]).find(SEPARATOR)
    if dot < 0 and len(payload) > _DOT_SEARCH:
        dot = bytes(payload).find(SEPARATOR)
    if dot < 0:
        raise BadRequest("the request has no '.' between the transform name and the poem")
    try:
        return str(payload[:dot], "utf-8"), str(payload[dot + len(SEPARATOR) :], "utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the request is not valid UTF-8 (byte {error.start} of its part)") from None
