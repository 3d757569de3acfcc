"""
The netstring protocol's bytes (see L{protocols.netstring}), without Twisted:
the framing (L{encodeNetstring}, L{NetstringDecoder}) and a request's
payload, C{<transform>.<poem>} (L{encodeRequest}, L{decodeRequest}).  The
Twisted protocols, the blocking client of L{gateway.syncclient} and the
poetry protocol share them.
"""

from service.errors import BadRequest

#: Separates the transform name from the poem in a request's payload.
SEPARATOR = b"."


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
    """

    def __init__(self, maxLength: int) -> None:
        """
        @param maxLength: the largest payload accepted, in bytes.
        """
        self.maxLength = maxLength
        self._buffer = bytearray()
        self._payloadLength: int | None = None

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        self._buffer += data

    def pop(self) -> bytes | None:
        """
        Take the next complete payload.

        @return: the payload, or C{None} if no complete netstring has arrived
            yet.
        @raise NetstringTooLong: if its length is over the limit.
        @raise NetstringError: if the bytes cannot be a valid netstring.
        """
        if self._payloadLength is None:
            colon = self._buffer.find(b":", 0, MAX_LENGTH_DIGITS + 1)
            digits = bytes(self._buffer[: MAX_LENGTH_DIGITS + 1 if colon < 0 else colon])
            self._checkLength(digits, complete=colon >= 0)
            if colon < 0:
                return None
            length = int(digits)
            head = bytes(self._buffer[colon + 1 :])
            del self._buffer[:]
            if length > self.maxLength:
                raise NetstringTooLong(length, self.maxLength, head)
            self._buffer += head
            self._payloadLength = length
        end = self._payloadLength
        if len(self._buffer) <= end:
            return None
        if self._buffer[end] != ord(","):
            raise NetstringError(f"the {end}-byte payload is not followed by a comma")
        payload = bytes(memoryview(self._buffer)[:end])
        del self._buffer[: end + 1]
        self._payloadLength = None
        return payload

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


def decodeRequest(payload: bytes) -> tuple[str, str]:
    """
    Split a request's payload into the transform name and the poem.

    @raise BadRequest: if there is no C{.} or the payload is not UTF-8.
    """
    name, separator, poem = payload.partition(SEPARATOR)
    if not separator:
        raise BadRequest("the request has no '.' between the transform name and the poem")
    try:
        return name.decode("utf-8"), poem.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the request is not valid UTF-8 (byte {error.start} of its part)") from None
