"""
The AMP commands of the transform service and the argument types they
travel in; docs/protocols.md (section AMP) is their contract.
"""

from twisted.protocols import amp

from protocols.amp.wire import ERROR_CODES, BrokenBox, decodeBoxes, encodeBox, splitValue, takeValue
from service.errors import BadRequest


class Text(amp.Unicode):
    """
    A UTF-8 string argument; a missing key or invalid UTF-8 is a
    L{BadRequest}.
    """

    def retrieve(self, d, name, proto):
        try:
            return super().retrieve(d, name, proto)
        except KeyError:
            raise BadRequest(f"the box has no {name.decode()!r} value") from None

    def fromString(self, inString: bytes) -> str:
        try:
            return inString.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(f"a value is not valid UTF-8 (byte {error.start} of it)") from None


class Split(amp.Argument):
    """
    An argument of any length: its wire form, from C{inner}, travels split
    across C{name}, C{name.2}, ... as L{splitValue} cuts it.

    @ivar inner: the argument type that converts the whole value.
    """

    def __init__(self, inner: amp.Argument) -> None:
        super().__init__()
        self.inner = inner

    def fromBox(self, name, strings, objects, proto):
        objects[name.decode("ascii")] = self.inner.fromStringProto(takeValue(strings, name), proto)

    def toBox(self, name, strings, objects, proto):
        value = self.inner.toStringProto(objects.pop(name.decode("ascii")), proto)
        strings.update(splitValue(name, value))


class TextBoxes(amp.Argument):
    """
    A list of dictionaries of text, each one box of the given keys (UTF-8
    values, keys in sorted order), the boxes one after the other: the wire
    form of Twisted's C{AmpList}, through this package's own codec.

    @ivar keys: the keys of every box.
    """

    def __init__(self, keys: list[bytes]) -> None:
        super().__init__()
        self.keys = sorted(keys)

    def fromString(self, inString: bytes) -> list[dict[str, str]]:
        try:
            boxes = decodeBoxes(inString)
            return [{key.decode("ascii"): box[key].decode("utf-8") for key in self.keys} for box in boxes]
        except (BrokenBox, KeyError, UnicodeDecodeError) as error:
            raise BadRequest(f"a list that is not boxes of {self.keys}: {error!r}") from None

    def toString(self, inObject: list[dict[str, str]]) -> bytes:
        return b"".join(
            encodeBox([(key, entry[key.decode("ascii")].encode("utf-8")) for key in self.keys])
            for entry in inObject
        )


class TransformPoem(amp.Command):
    """
    Transform a poem with a transform or pipeline of the catalogue.
    """

    commandName = b"Transform"
    arguments = [(b"transform", Text()), (b"poem", Split(Text()))]
    response = [(b"poem", Split(Text()))]
    errors = ERROR_CODES


class ListTransforms(amp.Command):
    """
    The catalogue: every transform's name and description.
    """

    response = [(b"transforms", Split(TextBoxes([b"name", b"description"])))]
    errors = ERROR_CODES
