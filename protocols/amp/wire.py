"""
The AMP wire format, as docs/protocols.md (section AMP) writes it down:
boxes, values split into pieces, error codes and the size limit of a box.

Plain Python over C{struct}: it imports neither the reactor nor Twisted's
AMP, so that the blocking client (C{xform transform --server amp://...})
loads it cheaply.  The server and the asynchronous client of this package
decode and encode every box with it too, so the framing exists once.
"""

import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, MutableMapping
from itertools import islice

from protocols.wirebuffer import keepReceived
from service.errors import ERRORS_BY_NAME, BadRequest, TransformError

#: The longest key, in bytes.
MAX_KEY_LENGTH = 255

#: The longest value, in bytes; a longer one travels split (L{splitValue}).
MAX_VALUE_LENGTH = 65535

#: The keys AMP itself gives a meaning to.
ASK = b"_ask"
COMMAND = b"_command"
ANSWER = b"_answer"
ERROR = b"_error"
ERROR_CODE = b"_error_code"
ERROR_DESCRIPTION = b"_error_description"

#: The values of this protocol that may travel split (C{poem}, C{poem.2},
#: ...): the poem of a question or an answer, and the list of transforms.
SPLIT_NAMES = frozenset([b"poem", b"transforms"])

#: What a key and its value count against the box limit beyond their own
#: bytes: about what a parsed key/value pair takes in memory.
PAIR_BYTES = 128

#: What a piece C{name.N} of a split value counts beyond its value's bytes:
#: the decoder keeps the pieces of a value packed, without their keys.
PIECE_BYTES = 8

#: The length prefix of every key and value: an unsigned 16-bit big-endian
#: integer.
_PREFIX = struct.Struct("!H")

#: Bytes the 65,535-byte cut may move back to stay out of a UTF-8 sequence.
_MAX_CUT_BACK = 3

#: The keys still kept of a box over the limit: enough to answer it.
_KEPT = (ASK, COMMAND, ANSWER, ERROR)


def errorCode(error: type[TransformError]) -> bytes:
    """
    The AMP error code of a service error: its name upper-cased with C{_}
    (C{unknown-transform} -> C{UNKNOWN_TRANSFORM}).
    """
    return error.name.upper().replace("-", "_").encode("ascii")


#: The AMP error code of every service error.
ERROR_CODES: dict[type[TransformError], bytes] = {
    error: errorCode(error) for error in ERRORS_BY_NAME.values()
}

#: The service error of every AMP error code.
ERRORS_BY_CODE: dict[bytes, type[TransformError]] = {code: error for error, code in ERROR_CODES.items()}


def maxBoxBytes(maxPoemBytes: int) -> int:
    """
    The limit of one box that carries a poem of at most C{maxPoemBytes}:
    the poem, a 1,024th of it for what its pieces count beyond their bytes,
    and 64 KiB for the other keys and values.  A box counts as L{BoxDecoder}
    says.
    """
    return maxPoemBytes + maxPoemBytes // 1024 + 65536


class BrokenBox(Exception):
    """
    The bytes received are not AMP boxes: a key over 255 bytes, or boxes
    that end in the middle of one.
    """


class BoxTooLarge(BrokenBox):
    """
    A box over the limit, for a L{BoxDecoder} that does not skip them.
    """


class OversizeBox(dict[bytes, bytes]):
    """
    What L{BoxDecoder} returns for a box over its limit when it skips them:
    only the AMP keys (C{_ask}, C{_command}, C{_answer}, C{_error}) of the
    box, enough to answer it.

    @ivar size: what the whole box counts.
    @ivar valueBytes: the bytes of each split value (such as C{poem}) it
        held, all its pieces together, by name.
    """

    __slots__ = ("size", "valueBytes")


def pieceKeys(name: bytes) -> Iterator[bytes]:
    """
    The keys of the pieces of a split value: C{name}, C{name.2},
    C{name.3}, ...
    """
    yield name
    number = 2
    while True:
        yield b"%s.%d" % (name, number)
        number += 1


def splitValue(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    """
    The keys and pieces that carry C{value}: pieces of at most 65,535
    bytes, none cut inside a UTF-8 sequence (for text).  An empty value is
    one empty piece.
    """
    if len(value) <= MAX_VALUE_LENGTH:  # the usual case: one piece
        return [(name, value)]
    pieces, start = [], 0
    while len(value) - start > MAX_VALUE_LENGTH:
        end = start + MAX_VALUE_LENGTH
        # A byte 10xxxxxx continues a UTF-8 sequence: cut before its start.
        for _ in range(_MAX_CUT_BACK):
            if value[end] & 0xC0 != 0x80:
                break
            end -= 1
        pieces.append(value[start:end])
        start = end
    pieces.append(value[start:])
    return list(zip(pieceKeys(name), pieces, strict=False))


def takeValue(box: MutableMapping[bytes, bytes], name: bytes) -> bytes:
    """
    Remove the value C{name} from C{box}, joining its pieces C{name.2},
    C{name.3}, ... if they are still apart (L{BoxDecoder} has joined them
    already).

    @raise BadRequest: if there is no C{name} key, or a C{name.N} key is not
        part of the gapless sequence C{name.2}, C{name.3}, ...
    """
    first = box.pop(name, None)
    if first is None:
        raise BadRequest(f"the box has no {name.decode()!r} value")
    prefix = name + b"."
    for key in box:
        if key.startswith(prefix):
            break
    else:
        return first  # the usual case: one piece, or pieces the decoder joined
    pieces = [first]
    for key in islice(pieceKeys(name), 1, None):
        piece = box.pop(key, None)
        if piece is None:
            break
        pieces.append(piece)
    strays = sorted(key for key in box if key.startswith(prefix))
    if strays:
        raise BadRequest(
            f"{strays[0].decode('ascii', 'replace')!r} does not continue {name.decode()!r}: "
            f"its pieces are numbered {name.decode()}.2, {name.decode()}.3, ... without gaps"
        )
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


def encodeBox(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """
    Serialize keys and values as one box, in the order given.

    @raise ValueError: for a key not of 1 to 255 bytes or a value over
        65,535 bytes.
    """
    parts = []
    pack = _PREFIX.pack
    for key, value in items:
        if not 0 < len(key) <= MAX_KEY_LENGTH or len(value) > MAX_VALUE_LENGTH:
            raise ValueError(f"key {bytes(key[:32])!r} or its value is too long for AMP")
        parts += (pack(len(key)), key, pack(len(value)), value)
    parts.append(b"\x00\x00")
    return b"".join(parts)


class _Pieces:
    """
    The pieces C{name.2}, C{name.3}, ... of one split value, packed as they
    arrive, in any order.

    @ivar data: their bytes, one after the other.
    @ivar numbers: the number of each.
    @ivar lengths: the length of each.
    """

    __slots__ = ("data", "numbers", "lengths")

    def __init__(self) -> None:
        self.data = bytearray()
        self.numbers = array("I")
        self.lengths = array("H")

    def add(self, number: int, value: bytes) -> None:
        self.data += value
        self.numbers.append(number)
        self.lengths.append(len(value))

    def joinInto(self, box: dict[bytes, bytes], name: bytes) -> None:
        """
        Put the whole value into C{box[name]}: the first piece, already
        there, then the gapless run C{name.2}, C{name.3}, ...  A piece after
        a gap is left as its own key, and without a first piece the lowest
        is, so that L{takeValue} refuses the value with the right reason.
        Of a number sent twice, the last piece counts, as for any key.
        """
        first = box.get(name)
        if first is None:
            box[b"%s.%d" % (name, min(self.numbers))] = b""
            return
        count = len(self.numbers)
        if self.numbers == array("I", range(2, count + 2)):  # in order, as this project sends them
            box[name] = first + self.data
            return
        starts, start = [], 0
        for length in self.lengths:
            starts.append(start)
            start += length
        latest = {number: index for index, number in enumerate(self.numbers)}
        parts = [first]
        with memoryview(self.data) as data:
            for number in sorted(latest):
                if number != len(parts) + 1:
                    box[b"%s.%d" % (name, number)] = b""
                    break
                index = latest[number]
                parts.append(data[starts[index] : starts[index] + self.lengths[index]])
            box[name] = b"".join(parts)


class BoxDecoder:
    """
    An incremental, strict parser of AMP boxes: feed it bytes as they
    arrive, in pieces of any size, and pop complete boxes.

    It counts what each box holds against L{maxBoxBytes}: every key and
    value, plus L{PAIR_BYTES} per key, except that a piece C{name.2},
    C{name.3}, ... of a value named in C{splitNames} counts its value's
    bytes plus L{PIECE_BYTES}.  Such pieces are kept packed and joined
    under C{name} when the box ends (L{takeValue} still refuses gaps).  A
    value is refused or skipped before any of it is buffered.

    @ivar maxBoxBytes: the limit of one box.
    @ivar skipOversize: what to do with a box over the limit: raise
        L{BoxTooLarge} as soon as it passes the limit (C{False}), or read it
        to its end without keeping it and return an L{OversizeBox}
        (C{True}).
    @ivar splitNames: the values whose pieces are joined.
    @ivar lastBoxBytes: what the last box popped counts.
    """

    def __init__(
        self, maxBoxBytes: int, skipOversize: bool = False, splitNames: frozenset[bytes] = SPLIT_NAMES
    ) -> None:
        self.maxBoxBytes = maxBoxBytes
        self.skipOversize = skipOversize
        self.splitNames = splitNames
        self.lastBoxBytes = 0
        self._buffer: bytes | bytearray = b""
        self._offset = 0
        self._newBox()

    def _newBox(self) -> None:
        self._box: dict[bytes, bytes] = {}
        # The pieces of the split values, made for the first piece.
        self._pieces: dict[bytes, _Pieces] | None = None
        self._key: bytes | None = None
        self._piece: tuple[bytes, int] | None = None
        self._boxBytes = 0
        # What each split value holds, counted once the box is over the limit.
        self._valueBytes: dict[bytes, int] | None = None
        self._wireBytes = 0
        self._skipping = 0
        self._oversize = False

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        self._buffer, self._offset = keepReceived(self._buffer, self._offset, data), 0

    def pending(self) -> int:
        """
        How many bytes of an unfinished box have been fed, on the wire.
        """
        return self._wireBytes + len(self._buffer) - self._offset

    def heldBytes(self) -> int:
        """
        The bytes this decoder holds: what the unfinished box counts as far
        as it is kept, and the bytes fed but not parsed yet.
        """
        kept = 0 if self._oversize else self._boxBytes
        return kept + len(self._buffer) - self._offset

    def pop(self, budget: int | None = None) -> dict[bytes, bytes] | None:
        """
        Take the next complete box.

        @param budget: if given, parse no further than what the box coming
            in may count within it, for now (a box over L{maxBoxBytes} is
            still refused or skipped as usual).
        @return: the box, an L{OversizeBox} for a box over the limit (with
            C{skipOversize}), or C{None} if no complete box has arrived yet.
        @raise BrokenBox: for a key over 255 bytes, or L{BoxTooLarge} for a
            box over the limit (without C{skipOversize}).  The decoder is
            unusable after it.
        """
        # The state of the box coming in lives in locals while parsing, and
        # goes back to the attributes at the end: this is the per-box path.
        key, piece, skipping, boxBytes = self._key, self._piece, self._skipping, self._boxBytes
        limit, unpack = self.maxBoxBytes, _PREFIX.unpack_from
        with memoryview(self._buffer) as view:
            offset, end = self._offset, len(view)
            start = offset
            try:
                while True:
                    if skipping:
                        skipped = min(skipping, end - offset)
                        offset += skipped
                        skipping -= skipped
                        if skipping:
                            return None
                    if end - offset < 2:
                        return None
                    (length,) = unpack(view, offset)
                    if key is None:
                        if length == 0:
                            offset += 2
                            self._boxBytes = boxBytes
                            box = self._endBox()
                            piece, boxBytes, start = None, 0, offset
                            return box
                        if length > MAX_KEY_LENGTH:
                            raise BrokenBox(f"a key of {length} bytes (keys are 1 to 255 bytes)")
                        if end - offset - 2 < length:
                            return None
                        key = view[offset + 2 : offset + 2 + length].tobytes()
                        piece = self._pieceOf(key) if b"." in key else None
                        offset += 2 + length
                        continue
                    cost = len(key) + length + PAIR_BYTES if piece is None else length + PIECE_BYTES
                    if self._oversize or boxBytes + cost > limit:
                        if not self.skipOversize:
                            raise BoxTooLarge(f"a box over the limit of {limit} bytes")
                        self._becomeOversize()
                        if key not in _KEPT:
                            boxBytes += cost
                            self._countValue(key if piece is None else piece[0], length)
                            skipping = length
                            key = None
                            offset += 2
                            continue
                    elif budget is not None and boxBytes + cost > budget:
                        return None
                    if end - offset - 2 < length:
                        return None
                    value = view[offset + 2 : offset + 2 + length].tobytes()
                    offset += 2 + length
                    boxBytes += cost
                    if self._oversize:  # one of the keys kept
                        self._countValue(key, length)
                        self._box[key] = value
                    elif piece is None:
                        self._box[key] = value
                    else:
                        self._addPiece(piece, value)
                    key = None
            finally:
                self._key, self._piece, self._skipping, self._boxBytes = key, piece, skipping, boxBytes
                self._wireBytes += offset - start
                self._offset = offset

    def _addPiece(self, piece: tuple[bytes, int], value: bytes) -> None:
        """
        Keep C{value}, the piece C{piece} (name and number) of a split
        value.
        """
        if self._pieces is None:
            self._pieces = {}
        pieces = self._pieces.get(piece[0])
        if pieces is None:
            pieces = self._pieces[piece[0]] = _Pieces()
        pieces.add(piece[1], value)

    def _countValue(self, name: bytes, length: int) -> None:
        """
        Add C{length} bytes to what the split value C{name} of a box over
        the limit holds, if C{name} is one.
        """
        if name in self.splitNames:
            self._valueBytes[name] = self._valueBytes.get(name, 0) + length

    def _pieceOf(self, key: bytes) -> tuple[bytes, int] | None:
        """
        The name and number of a piece C{name.N} (N from 2, decimal, no
        leading zero) of a split value, or C{None} for any other key.
        """
        name, _, digits = key.rpartition(b".")
        if name not in self.splitNames or not digits.isdigit() or digits[0] == 0x30 or len(digits) > 9:
            return None
        number = int(digits)
        return (name, number) if number >= 2 else None

    def _becomeOversize(self) -> None:
        """
        The box coming in is over the limit: keep only its AMP keys, and
        count what its split values hold, from what they held so far.
        """
        if not self._oversize:
            self._oversize = True
            self._valueBytes = {}
            for name in self.splitNames:
                held = len(self._box.get(name, b""))
                if self._pieces is not None and name in self._pieces:
                    held += len(self._pieces[name].data)
                if held:
                    self._valueBytes[name] = held
            self._box = {key: self._box[key] for key in _KEPT if key in self._box}
            self._pieces = None

    def _endBox(self) -> dict[bytes, bytes]:
        box, size = self._box, self._boxBytes
        if self._oversize:
            box = OversizeBox(box)
            box.size, box.valueBytes = size, self._valueBytes
        elif self._pieces is not None:
            for name, pieces in self._pieces.items():
                pieces.joinInto(box, name)
        self._newBox()
        self.lastBoxBytes = size
        return box


def decodeBoxes(data: bytes) -> list[dict[bytes, bytes]]:
    """
    The boxes serialized one after the other in C{data} (the value of an
    C{AmpList}, such as the list of transforms).

    @raise BrokenBox: if C{data} is not whole boxes.
    """
    decoder = BoxDecoder(sys.maxsize, splitNames=frozenset())
    decoder.feed(data)
    boxes = list(iter(decoder.pop, None))
    if decoder.pending():
        raise BrokenBox("the boxes end in the middle of one")
    return boxes
