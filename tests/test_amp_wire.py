"""
The AMP framing of L{protocols.amp.wire}, which the server, the
asynchronous client and the blocking client share: split values, boxes,
the decoder's limits, and Hypothesis properties of the decoder.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.amp.wire import (
    ERROR_CODES,
    PAIR_BYTES,
    PIECE_BYTES,
    BoxDecoder,
    BoxTooLarge,
    BrokenBox,
    OversizeBox,
    decodeBoxes,
    encodeBox,
    maxBoxBytes,
    splitValue,
    takeValue,
)
from service import BadRequest

#: The request and the answer shown in the docs, byte for byte.
REQUEST = (
    b"\x00\x04_ask\x00\x011"
    b"\x00\x08_command\x00\x09Transform"
    b"\x00\x04poem\x00\x0bHELLO WORLD"
    b"\x00\x09transform\x00\x0bcummingsify"
    b"\x00\x00"
)
ANSWER = b"\x00\x07_answer\x00\x011\x00\x04poem\x00\x0bhello world\x00\x00"
REQUEST_BOX = {
    b"_ask": b"1",
    b"_command": b"Transform",
    b"poem": b"HELLO WORLD",
    b"transform": b"cummingsify",
}

#: What REQUEST counts against the box limit: its keys and values, and
#: PAIR_BYTES for each of its four keys.
REQUEST_BYTES = 4 + 1 + 8 + 9 + 4 + 11 + 9 + 11 + 4 * PAIR_BYTES


def decodeAll(decoder: BoxDecoder, chunks) -> list[dict]:
    boxes = []
    for chunk in chunks:
        decoder.feed(chunk)
        boxes += iter(decoder.pop, None)
    return boxes


@pytest.mark.parametrize(
    ("size", "sizes"),
    [(0, [0]), (65535, [65535]), (65536, [65535, 1]), (200_000, [65535, 65535, 65535, 3395])],
)
def test_splitSizes(size, sizes):
    """
    A value is cut into pieces of 65,535 bytes under C{name}, C{name.2},
    ...; a value that fits stays whole, an empty one is one empty piece.
    """
    pieces = splitValue(b"poem", b"A" * size)
    assert [len(piece) for key, piece in pieces] == sizes
    assert [key for key, piece in pieces] == [b"poem"] + [b"poem.%d" % n for n in range(2, len(sizes) + 1)]


@pytest.mark.parametrize(
    ("character", "before"),
    [
        (character, before)
        for character in ["é", "€", "𝄞"]
        for before in range(65535 - len(character.encode()) + 1, 65536)
    ],
)
def test_splitKeepsCharactersWhole(character, before):
    """
    A cut that would fall inside a UTF-8 sequence moves back to its start,
    so every piece decodes on its own.
    """
    text = "a" * before + character * 3 + "z"
    pieces = [piece for key, piece in splitValue(b"poem", text.encode())]
    assert "".join(piece.decode("utf-8") for piece in pieces) == text
    assert all(len(piece) <= 65535 for piece in pieces)


def test_takeValueJoinsPieces():
    values = {b"poem": b"ab", b"poem.2": b"cd", b"poem.3": b"e", b"transform": b"x"}
    assert takeValue(values, b"poem") == b"abcde"
    assert values == {b"transform": b"x"}


@pytest.mark.parametrize(
    "values",
    [
        {b"poem.2": b"a"},
        {b"poem": b"a", b"poem.3": b"b"},
        {b"poem": b"a", b"poem.2": b"b", b"poem.x": b"c"},
    ],
)
def test_takeValueRefusesGapsAndStrays(values):
    with pytest.raises(BadRequest):
        takeValue(dict(values), b"poem")


def test_decoderWholeAndByteByByte():
    data = REQUEST + ANSWER
    expected = [REQUEST_BOX, {b"_answer": b"1", b"poem": b"hello world"}]
    assert decodeBoxes(data) == expected
    decoder = BoxDecoder(1000)
    assert decodeAll(decoder, [bytes([byte]) for byte in data]) == expected
    assert decoder.pending() == 0
    assert decoder.lastBoxBytes == 7 + 1 + 4 + 11 + 2 * PAIR_BYTES


def test_decoderRefusesLongKeys():
    decoder = BoxDecoder(1000)
    decoder.feed(b"\x01\x00")
    with pytest.raises(BrokenBox, match="a key of 256 bytes"):
        decoder.pop()


def test_decoderCountsKeysValuesAndPairs():
    """
    A box counts its keys and values plus L{PAIR_BYTES} per key: a limit
    of exactly that accepts the docs' request, one byte less refuses it as
    soon as the value that passes the limit is announced.
    """
    assert decodeAll(BoxDecoder(REQUEST_BYTES), [REQUEST]) == [REQUEST_BOX]
    decoder = BoxDecoder(REQUEST_BYTES - 1)
    decoder.feed(REQUEST[:-13])  # up to the length of "cummingsify"
    with pytest.raises(BoxTooLarge, match=f"over the limit of {REQUEST_BYTES - 1} bytes"):
        decoder.pop()


def test_decoderSkipsAnOversizeBox():
    """
    With C{skipOversize}, a box over the limit is read to its end without
    keeping more than its AMP keys, and the next box is decoded as usual.
    """
    decoder = BoxDecoder(1000, skipOversize=True)
    big = encodeBox([(b"_ask", b"7"), (b"junk", b"j" * 60000), (b"_command", b"Transform")])
    chunks = [big[start : start + 1000] for start in range(0, len(big), 1000)] + [REQUEST]
    boxes, held = [], []
    for chunk in chunks:
        boxes += decodeAll(decoder, [chunk])
        held.append(decoder.heldBytes())
    assert [type(box) for box in boxes] == [OversizeBox, dict]
    assert boxes == [{b"_ask": b"7", b"_command": b"Transform"}, REQUEST_BOX]
    assert boxes[0].size == (4 + 1) + (4 + 60000) + (8 + 9) + 3 * PAIR_BYTES
    assert max(held) <= 1000


def test_decoderJoinsPieces():
    """
    The pieces of C{poem} and C{transforms} are joined when the box ends,
    in numeric order whatever order they came in; each counts its bytes
    plus L{PIECE_BYTES}.
    """
    pieces = [(b"poem.%d" % n, b"%d," % n) for n in range(2, 13)]
    twistedOrder = sorted([(b"poem", b"1,"), *pieces, (b"other.2", b"x")])  # poem.10 before poem.2
    decoder = BoxDecoder(10_000)
    (box,) = decodeAll(decoder, [encodeBox(twistedOrder)])
    assert box == {b"poem": b"".join(b"%d," % n for n in range(1, 13)), b"other.2": b"x"}
    assert decoder.lastBoxBytes == (4 + 2 + PAIR_BYTES) + sum(len(v) + PIECE_BYTES for k, v in pieces) + (
        7 + 1 + PAIR_BYTES
    )


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        ([(b"poem", b"a"), (b"poem.3", b"c")], "'poem.3' does not continue 'poem'"),
        ([(b"poem", b"a"), (b"poem.2", b"b"), (b"poem.4", b"d")], "'poem.4' does not continue 'poem'"),
        ([(b"poem.2", b"b")], "the box has no 'poem' value"),
        ([(b"poem", b"a"), (b"poem.02", b"b")], "'poem.02' does not continue 'poem'"),
        ([(b"poem", b"a"), (b"poem.1", b"b")], "'poem.1' does not continue 'poem'"),
    ],
)
def test_decodedPiecesWithGapsAreRefused(pairs, reason):
    (box,) = decodeAll(BoxDecoder(10_000), [encodeBox(pairs)])
    with pytest.raises(BadRequest, match=reason):
        takeValue(box, b"poem")


def test_aPieceSentTwiceCountsLast():
    (box,) = decodeAll(
        BoxDecoder(10_000), [encodeBox([(b"poem", b"a"), (b"poem.2", b"x"), (b"poem.2", b"b")])]
    )
    assert takeValue(box, b"poem") == b"ab"


def test_decodeBoxesRefusesAPartialBox():
    with pytest.raises(BrokenBox):
        decodeBoxes(REQUEST[:-1])


@pytest.mark.parametrize(
    "pair",
    [(b"", b"x"), (b"k" * 256, b"x"), (b"k", b"x" * 65536)],
    ids=["empty key", "long key", "long value"],
)
def test_encodeBoxRefusesWhatAMPCannotCarry(pair):
    with pytest.raises(ValueError):
        encodeBox([pair])


def test_errorCodesAreTheNamesUpperCased():
    assert {error.__name__: code for error, code in ERROR_CODES.items()} == {
        "UnknownTransform": b"UNKNOWN_TRANSFORM",
        "BadRequest": b"BAD_REQUEST",
        "PoemTooLarge": b"POEM_TOO_LARGE",
        "TransformFailed": b"TRANSFORM_FAILED",
        "TransformTimeout": b"TIMEOUT",
        "Overloaded": b"OVERLOADED",
    }


def test_boxLimit():
    assert maxBoxBytes(1024 * 1024) == 1024 * 1024 + 1024 + 65536


@pytest.mark.parametrize(
    ("poemBytes", "pieceBytes"), [(100_000, 1), (1024 * 1024, 128), (1024 * 1024, 65535)]
)
def test_aPoemInSmallPiecesFits(poemBytes, pieceBytes):
    """
    As docs/protocols.md says: within the default limit, a poem of 100 KB
    may come in pieces of one byte, and a poem at the limit in pieces of
    128 bytes or more.
    """
    poem = bytes(range(256)) * (poemBytes // 256) + b"x" * (poemBytes % 256)
    cuts = range(0, len(poem), pieceBytes)
    pairs = [
        (b"poem" if n == 1 else b"poem.%d" % n, poem[cut : cut + pieceBytes]) for n, cut in enumerate(cuts, 1)
    ]
    decoder = BoxDecoder(maxBoxBytes(1024 * 1024))
    (box,) = decodeAll(decoder, [encodeBox([(b"_ask", b"1"), (b"_command", b"Transform"), *pairs])])
    assert takeValue(box, b"poem") == poem


# Hypothesis: the decoder on arbitrary streams.

keys = st.binary(min_size=1, max_size=12).filter(lambda key: b"." not in key)
boxes = st.dictionaries(keys, st.binary(max_size=300), max_size=6)


def cutAnywhere(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[start:end] for start, end in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2000),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
    limit=st.integers(min_value=0, max_value=3000),
    skip=st.booleans(),
)
def test_anyStreamRaisesOnlyBrokenBox(data, cuts, limit, skip):
    """
    Any bytes, cut anywhere: the decoder returns boxes or C{None}, or
    raises L{BrokenBox}, and never holds more than its limit plus what was
    fed and not parsed yet.
    """
    decoder = BoxDecoder(limit, skipOversize=skip)
    try:
        for chunk in cutAnywhere(data, cuts):
            decoder.feed(chunk)
            while (box := decoder.pop()) is not None:
                assert isinstance(box, dict)
                assert all(isinstance(key, bytes) and isinstance(value, bytes) for key, value in box.items())
            assert decoder.heldBytes() <= max(limit, 0) + len(data)
    except BrokenBox:
        pass


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(boxes, max_size=5), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_boxesRoundTripAtAnyCut(boxes, cuts):
    data = b"".join(encodeBox(box.items()) for box in boxes)
    decoder = BoxDecoder(10**6)
    assert decodeAll(decoder, cutAnywhere(data, cuts)) == boxes
    assert decoder.pending() == 0


@settings(max_examples=200, deadline=None)
@given(
    poem=st.text(max_size=400),
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=10),
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    order=st.randoms(use_true_random=False),
)
def test_splitValuesRoundTripAtAnyPieceSizeAndOrder(poem, sizes, cuts, order: random.Random):
    """
    A poem cut into pieces of any sizes (inside characters too), its keys
    in any order, is joined back by the decoder and L{takeValue}.
    """
    data, pieces, start = poem.encode("utf-8"), [], 0
    while start < len(data) or not pieces:
        size = sizes[len(pieces) % len(sizes)]
        pieces.append(data[start : start + size])
        start += size
    pairs = [(b"poem" if n == 1 else b"poem.%d" % n, piece) for n, piece in enumerate(pieces, 1)]
    order.shuffle(pairs)
    (box,) = decodeAll(BoxDecoder(10**6), cutAnywhere(encodeBox([(b"_ask", b"1"), *pairs]), cuts))
    assert takeValue(box, b"poem").decode("utf-8") == poem
    assert box == {b"_ask": b"1"}


def boxBytes(box: dict[bytes, bytes]) -> int:
    return sum(len(key) + len(value) + PAIR_BYTES for key, value in box.items())


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(boxes, max_size=5), limit=st.integers(min_value=0, max_value=2000))
def test_boxesOverTheLimitAreSkipped(boxes, limit):
    """
    With C{skipOversize}, each box within the limit comes out whole and
    each box over it as an L{OversizeBox} of its AMP keys.
    """
    data = b"".join(encodeBox(box.items()) for box in boxes)
    decoded = decodeAll(BoxDecoder(limit, skipOversize=True), [data])
    expected = [
        box
        if boxBytes(box) <= limit
        else {
            key: value for key, value in box.items() if key in (b"_ask", b"_command", b"_answer", b"_error")
        }
        for box in boxes
    ]
    assert decoded == expected
    assert [type(box) is OversizeBox for box in decoded] == [boxBytes(box) > limit for box in boxes]
