"""
The transform service over AMP, Twisted's Asynchronous Messaging Protocol:
the server (L{TransformAMPFactory}), the asynchronous client
(L{AMPTransformClient}), and the framing helpers the blocking client of
L{gateway.syncclient} shares.

The wire.  Both peers send I{boxes}; a box is a sequence of key/value pairs
followed by two zero bytes::

    <key length: 2 bytes, big-endian, 1-255> <key>
    <value length: 2 bytes, big-endian, 0-65535> <value>
    ...
    00 00

A client asks a question with a box holding C{_command} (the command's
name), C{_ask} (a tag of its choosing, unique among its unanswered
questions on the connection) and the command's arguments.  The server
answers with a box holding C{_answer} (the same tag) and the answer's
values, or C{_error} (the tag), C{_error_code} and C{_error_description}
(UTF-8).  Answers come as each request finishes, not in the order asked.
Keys may come in any order within a box (Twisted sorts them).

    - C{Transform}: arguments C{transform} (the name, UTF-8) and C{poem}
      (UTF-8); answer C{poem}.
    - C{ListTransforms}: no arguments; answer C{transforms}, the
      concatenation of one box per transform with the keys C{name} and
      C{description}, each box ending in its two zero bytes.

One C{Transform} request and its answer, on the wire (tag C{1})::

    00 04 _ask 00 01 1
    00 08 _command 00 09 Transform
    00 04 poem 00 0b HELLO WORLD
    00 09 transform 00 0b cummingsify
    00 00

    00 07 _answer 00 01 1
    00 04 poem 00 0b hello world
    00 00

I{Split values.}  A value longer than 65,535 bytes -- a poem, in practice,
but C{transforms} follows the same rule -- travels split across the keys
C{poem}, C{poem.2}, C{poem.3}, ... of the same box, in both directions: the
value is the concatenation of the pieces in that order.  Senders here cut
pieces of 65,535 bytes, moving a cut back by up to three bytes so that it
never falls inside a UTF-8 sequence; receivers join the bytes before
decoding, so a client may cut anywhere.  The numbering has no gaps; a
C{poem.N} key outside the sequence is a C{BAD_REQUEST}.

I{Errors.}  The codes are the service's error names upper-cased with
C{_}: C{UNKNOWN_TRANSFORM}, C{BAD_REQUEST}, C{POEM_TOO_LARGE},
C{TRANSFORM_FAILED}, C{TIMEOUT}, C{OVERLOADED} (and Twisted's C{UNHANDLED}
for an unknown command).  An error answers one question; the connection
and the other questions on it carry on.

I{Limits.}  One box may be L{maxBoxBytes} long (the maximum poem size, a
1,024th of it, and 64 KiB for everything else).  The server reads a longer
box to its end without keeping it and answers C{POEM_TOO_LARGE}
(C{BAD_REQUEST} for another command), so the maximum poem size is the only
limit a client meets.  While earlier questions are unanswered and the next
box would take the connection past that size, or while the client does not
read its answers, the server stops reading from the connection until answers
go out.  A key over 255 bytes, a box that is neither a question nor an
answer, or a tag reused while unanswered drops the connection.  A
connection with nothing in flight and nothing received for the idle timeout
is closed.
"""

import struct
from collections.abc import Iterable, Iterator, MutableMapping

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import connectProtocol
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from protocols.addresses import describeAddress
from protocols.common import TransformServerFactory, logRefusal
from service.deadline import withDeadline
from service.errors import ERRORS_BY_NAME, BadRequest, TransformError
from service.transformer import TransformService

#: The length prefix of every key and value: an unsigned 16-bit big-endian
#: integer.
_PREFIX = struct.Struct("!H")

#: Bytes the 65,535-byte cut may move back to stay out of a UTF-8 sequence.
_MAX_CUT_BACK = 3


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
    The longest box, on the wire, that carries a poem of at most
    C{maxPoemBytes}: the poem, a 1,024th of it for the keys and length
    prefixes of its pieces, and 64 KiB for the other keys and values.
    """
    return maxPoemBytes + maxPoemBytes // 1024 + 65536


class BrokenBox(Exception):
    """
    The bytes received are not AMP boxes, or hold a box over the limit.
    """


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
    pieces, start = [], 0
    while len(value) - start > amp.MAX_VALUE_LENGTH:
        end = start + amp.MAX_VALUE_LENGTH
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
    Remove the pieces of the value C{name} from C{box} and join them.

    @raise BadRequest: if there is no C{name} key, or a C{name.N} key is not
        part of the gapless sequence C{name.2}, C{name.3}, ...
    """
    pieces = []
    for key in pieceKeys(name):
        piece = box.pop(key, None)
        if piece is None:
            break
        pieces.append(piece)
    if not pieces:
        raise BadRequest(f"the box has no {name.decode()!r} value")
    strays = sorted(key for key in box if key.startswith(name + b"."))
    if strays:
        raise BadRequest(
            f"{strays[0].decode('ascii', 'replace')!r} does not continue {name.decode()!r}: "
            f"its pieces are numbered {name.decode()}.2, {name.decode()}.3, ... without gaps"
        )
    return b"".join(pieces)


def encodeBox(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """
    Serialize keys and values as one box.

    @raise ValueError: for a key not of 1 to 255 bytes or a value over
        65,535 bytes.
    """
    parts = []
    for key, value in items:
        if not 0 < len(key) <= amp.MAX_KEY_LENGTH or len(value) > amp.MAX_VALUE_LENGTH:
            raise ValueError(f"key {key[:32]!r} or its value is too long for AMP")
        parts += [_PREFIX.pack(len(key)), key, _PREFIX.pack(len(value)), value]
    parts.append(_PREFIX.pack(0))
    return b"".join(parts)


class BoxDecoder:
    """
    An incremental parser of AMP boxes, for clients without Twisted: feed
    it bytes as they arrive and pop complete boxes.
    """

    def __init__(self, maxBoxBytes: int) -> None:
        """
        @param maxBoxBytes: the longest box accepted, on the wire.
        """
        self.maxBoxBytes = maxBoxBytes
        self._buffer = bytearray()
        self._offset = 0
        self._box: dict[bytes, bytes] = {}
        self._key: bytes | None = None
        self._boxBytes = 0

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        self._buffer += data

    def pending(self) -> int:
        """
        How many bytes of an unfinished box have been fed.
        """
        return self._boxBytes + len(self._buffer) - self._offset

    def pop(self) -> dict[bytes, bytes] | None:
        """
        Take the next complete box.

        @return: the box, or C{None} if no complete box has arrived yet.
        @raise BrokenBox: for a key over 255 bytes or a box over the limit.
        """
        while len(self._buffer) - self._offset >= _PREFIX.size:
            (length,) = _PREFIX.unpack_from(self._buffer, self._offset)
            if self._key is None and length > amp.MAX_KEY_LENGTH:
                raise BrokenBox(f"a key of {length} bytes (keys are 1 to 255 bytes)")
            end = self._offset + _PREFIX.size + length
            if self._boxBytes + end - self._offset > self.maxBoxBytes:
                raise BrokenBox(f"a box over the limit of {self.maxBoxBytes} bytes")
            if len(self._buffer) < end:
                break
            string = bytes(self._buffer[self._offset + _PREFIX.size : end])
            self._boxBytes += end - self._offset
            self._offset = end
            if self._key is not None:
                self._box[self._key], self._key = string, None
            elif string:
                self._key = string
            else:
                box, self._box, self._boxBytes = self._box, {}, 0
                del self._buffer[: self._offset]
                self._offset = 0
                return box
        return None


def decodeBoxes(data: bytes) -> list[dict[bytes, bytes]]:
    """
    The boxes serialized one after the other in C{data} (the value of an
    C{AmpList}).

    @raise BrokenBox: if C{data} is not whole boxes.
    """
    decoder = BoxDecoder(len(data))
    decoder.feed(data)
    boxes = list(iter(decoder.pop, None))
    if decoder.pending():
        raise BrokenBox("the boxes end in the middle of one")
    return boxes


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


class Transform(amp.Command):
    """
    Transform a poem with a transform or pipeline of the catalogue.
    """

    arguments = [(b"transform", Text()), (b"poem", Split(Text()))]
    response = [(b"poem", Split(Text()))]
    errors = ERROR_CODES


class ListTransforms(amp.Command):
    """
    The catalogue: every transform's name and description.
    """

    response = [(b"transforms", Split(amp.AmpList([(b"name", Text()), (b"description", Text())])))]
    errors = ERROR_CODES


class TransformLocator(amp.CommandLocator):
    """
    The responders of one connection, on the shared service.  Every failure
    is answered with one of the service's error codes: an unexpected one is
    logged and answered C{TRANSFORM_FAILED}, never with Twisted's C{UNKNOWN},
    which would close the connection.

    @ivar service: the shared transform service.
    @ivar peer: the client, for log lines.
    """

    log = Logger()

    def __init__(self, service: TransformService, peer: str) -> None:
        self.service = service
        self.peer = peer
        self._running: set[Deferred] = set()

    @Transform.responder
    def transform(self, transform: str, poem: str) -> "Deferred[dict]":
        return self.service.transform(transform, poem).addCallback(lambda new: {"poem": new})

    @ListTransforms.responder
    def listTransforms(self) -> dict:
        entries = self.service.transforms()
        return {"transforms": [{"name": entry.name, "description": entry.description} for entry in entries]}

    def locateResponder(self, name: bytes):
        responder = super().locateResponder(name)
        if responder is None:
            return None

        def respond(box: amp.AmpBox) -> Deferred:
            answer = maybeDeferred(responder, box)
            if not answer.called:
                self._running.add(answer)
                answer.addBoth(self._finished, answer)
            return answer.addErrback(self._answerFailure, name.decode("ascii", "replace"))

        return respond

    def _finished(self, result: object, answer: Deferred) -> object:
        self._running.discard(answer)
        return result

    def _answerFailure(self, failure: Failure, command: str) -> Failure:
        if failure.check(amp.RemoteAmpError):  # a service error, mapped by Command.errors
            cause = failure.value.local
            if cause is not None and cause.check(TransformError):
                self._logRefusal(cause.value)
            return failure
        if failure.check(TransformError):  # from the arguments, before the responder ran
            self._logRefusal(failure.value)
            return Failure(
                amp.RemoteAmpError(errorCode(type(failure.value)), failure.value.message, local=failure)
            )
        if failure.check(CancelledError):  # the connection is gone; nobody reads this answer
            return Failure(amp.RemoteAmpError(b"TRANSFORM_FAILED", "cancelled", local=failure))
        self.log.failure(
            "amp {peer}: {command} failed unexpectedly", failure, peer=self.peer, command=command
        )
        return Failure(
            amp.RemoteAmpError(b"TRANSFORM_FAILED", f"the server failed to answer {command}", local=failure)
        )

    def _logRefusal(self, error: TransformError) -> None:
        logRefusal(self.log, error, "amp {peer}: answering {error}: {reason}", peer=self.peer)

    def cancelAll(self) -> None:
        """
        Abandon every request still running: its client has gone.
        """
        for answer in list(self._running):
            answer.cancel()


class BoundedAMP(amp.AMP):
    """
    An AMP connection that keeps at most about L{maxBoxBytes} of the box
    being received, however long the box is.

    It counts the bytes of the box as they arrive.  Past the limit it keeps
    only the AMP keys (C{_ask}, C{_command}, C{_answer}, C{_error}) of the
    rest of the box, skipping the other keys and their values, so that
    L{oversizeBoxReceived} can answer the box without holding it.  Bytes
    that are not AMP drop the connection with a log line.

    @ivar maxBoxBytes: the longest box, on the wire, handled as usual.
    @ivar peer: the other side, for log lines.
    """

    log = Logger()
    maxBoxBytes: int
    peer = "?"

    #: The keys of an oversize box that are still kept: enough to answer it.
    _KEPT = frozenset([amp.ASK, amp.COMMAND, amp.ANSWER, amp.ERROR])

    _boxBytes = 0
    _keptBytes = 0
    _oversize = False
    _skippingValue = False
    _parsing = False
    _broken = False

    def connectionMade(self) -> None:
        self.peer = describeAddress(self.transport.getPeer())

    def dataReceived(self, data: bytes) -> None:
        if self._broken:
            return
        self._parsing = True
        try:
            super().dataReceived(data)
        finally:
            self._parsing = False

    def stringReceived(self, string: bytes) -> None:
        if self._broken:
            return
        self._boxBytes += _PREFIX.size + len(string)
        if self._skippingValue:
            self._skippingValue = False
            self.MAX_LENGTH = amp.MAX_KEY_LENGTH
            return
        if self.state != "value" and self._boxBytes > self.maxBoxBytes:
            self._oversize = True
            if string and string not in self._KEPT:
                self._skippingValue = True
                self.MAX_LENGTH = amp.MAX_VALUE_LENGTH
                return
        self._keptBytes += _PREFIX.size + len(string)
        super().stringReceived(string)

    def bufferedBytes(self) -> int:
        """
        The bytes of boxes this connection holds: the box coming in, as
        far as it is kept.  (Twisted's parser also holds the one key or
        value being received, at most 65,537 bytes.)
        """
        return self._keptBytes

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        size, self._boxBytes, self._keptBytes = self._boxBytes, 0, 0
        if self._oversize:
            self._oversize = False
            self.oversizeBoxReceived(box, size)
        else:
            self.boxReceived(box, size)

    def boxReceived(self, box: amp.AmpBox, size: int) -> None:
        """
        A box within the limit arrived: dispatch it as AMP does.

        @param size: its length on the wire.
        """
        try:
            super().ampBoxReceived(box)
        except (amp.NoEmptyBoxes, KeyError):
            self.drop("a box that is neither a question nor the answer to one")

    def oversizeBoxReceived(self, box: amp.AmpBox, size: int) -> None:
        """
        A box over the limit arrived.  C{box} is incomplete: it holds what
        came before the limit, and only the AMP keys after it.

        @param size: its length on the wire.
        """
        raise NotImplementedError

    def lengthLimitExceeded(self, length: int) -> None:
        self.drop(f"a key of {length} bytes (keys are 1 to 255 bytes)")

    def drop(self, reason: str) -> None:
        """
        The peer does not speak AMP: log why and abort the connection.
        """
        self.log.info("amp {peer}: dropping the connection: {reason}", peer=self.peer, reason=reason)
        self._broken = True
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        pending = self._boxBytes + len(self.recvd)
        if pending and not self._broken:
            self.log.info(
                "amp {peer}: the connection closed in the middle of a box ({bytes} bytes of it received)",
                peer=self.peer,
                bytes=pending,
            )
        super().connectionLost(reason)


class TransformAMP(BoundedAMP, TimeoutMixin):
    """
    Serve the transform commands on one connection, many questions at once.

    Its responders are a L{TransformLocator}; this class only manages the
    connection: the box limit, reading no faster than answers go out, and
    the idle timeout.

    @ivar factory: the L{TransformAMPFactory} that made it.
    """

    factory: "TransformAMPFactory"

    _closing = False

    def __init__(self) -> None:
        super().__init__()
        self._unanswered: dict[bytes, int] = {}
        self._heldBytes = 0
        self._pauses: set[str] = set()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.callLater = self.factory.clock.callLater
        self.maxBoxBytes = maxBoxBytes(self.factory.service.limits.maxPoemBytes)
        self.locator = TransformLocator(self.factory.service, self.peer)
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        if data:
            self.resetTimeout()
        super().dataReceived(data)

    def stringReceived(self, string: bytes) -> None:
        super().stringReceived(string)
        self._holdFewerBytes()

    def boxReceived(self, box: amp.AmpBox, size: int) -> None:
        if not self._isNewQuestion(box):
            return
        if amp.ASK in box and amp.COMMAND in box:
            self._unanswered[box[amp.ASK]] = size
            self._heldBytes += size
            self._questionsChanged()
        super().boxReceived(box, size)

    def oversizeBoxReceived(self, box: amp.AmpBox, size: int) -> None:
        if amp.COMMAND not in box:
            self.drop(f"a {size}-byte box that is not a question")
            return
        if not self._isNewQuestion(box):
            return
        error = "POEM_TOO_LARGE" if box.get(amp.COMMAND) == Transform.commandName else "BAD_REQUEST"
        description = (
            f"the request is {size} bytes; the limit is {self.maxBoxBytes} bytes, "
            f"for a poem of at most {self.factory.service.limits.maxPoemBytes} bytes"
        )
        self.log.info(
            "amp {peer}: answering {error}: {reason}", peer=self.peer, error=error, reason=description
        )
        if amp.ASK in box:
            self.sendBox(
                amp.AmpBox(
                    {
                        amp.ERROR: box[amp.ASK],
                        amp.ERROR_CODE: error.encode("ascii"),
                        amp.ERROR_DESCRIPTION: description.encode("utf-8"),
                    }
                )
            )

    def _isNewQuestion(self, box: amp.AmpBox) -> bool:
        """
        Whether C{box} may be dispatched; a question whose tag is still
        unanswered drops the connection.
        """
        if box.get(amp.ASK) in self._unanswered:
            self.drop(f"the tag {box[amp.ASK]!r} was reused while its question is unanswered")
            return False
        return True

    def sendBox(self, box: amp.AmpBox) -> None:
        super().sendBox(box)
        tag = box.get(amp.ANSWER, box.get(amp.ERROR))
        if tag in self._unanswered:
            self._heldBytes -= self._unanswered.pop(tag)
            self._questionsChanged()

    def bufferedBytes(self) -> int:
        """
        The bytes of boxes this connection holds: the box coming in, as far
        as it is kept, and the questions not answered yet.
        """
        return super().bufferedBytes() + self._heldBytes

    def _questionsChanged(self) -> None:
        self._holdFewerBytes()
        self.setTimeout(None if self._unanswered else self.factory.idleTimeout)

    def _holdFewerBytes(self) -> None:
        """
        Stop reading while unanswered questions and the box coming in would
        hold more than one box's worth; a lone box has its own limit.
        """
        tooMany = self._heldBytes > 0 and self._heldBytes + self._boxBytes >= self.maxBoxBytes
        self._pauseReading("questions", tooMany)

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: read no more questions until
        the client reads its answers.
        """
        self._pauseReading("answers", True)

    def resumeProducing(self) -> None:
        self._pauseReading("answers", False)

    def stopProducing(self) -> None:
        """
        The connection is ending; there is nothing more to read.
        """
        self.paused = True

    def _pauseReading(self, reason: str, pause: bool) -> None:
        if pause:
            self._pauses.add(reason)
        else:
            self._pauses.discard(reason)
        if self.transport is None or self._broken:
            return
        if self._pauses and not self.paused:
            self.paused = True
            self.transport.pauseProducing()
        elif not self._pauses and self.paused:
            self.paused = False
            self.transport.resumeProducing()
            if not self._parsing:
                self.dataReceived(b"")  # the boxes already received

    def timeoutConnection(self) -> None:
        if self._closing:
            self.log.info("amp {peer}: did not close in time; aborting the connection", peer=self.peer)
            self.transport.abortConnection()
            return
        self.log.info(
            "amp {peer}: idle for {seconds:g} s; closing the connection",
            peer=self.peer,
            seconds=self.factory.idleTimeout,
        )
        self._closing = True
        self.transport.loseConnection()
        self.setTimeout(self.factory.idleTimeout)  # for a client that does not read

    def connectionLost(self, reason: Failure) -> None:
        self.setTimeout(None)
        super().connectionLost(reason)
        self.locator.cancelAll()


class TransformAMPFactory(TransformServerFactory):
    """
    Serve the AMP transform commands for a L{TransformService}; the idle
    timeout is the time a connection with nothing in flight may stay silent.
    """

    protocol = TransformAMP


class _ClientAMP(BoundedAMP):
    """
    The client's side of one connection: it answers no commands, turns an
    answer over its limit into a C{POEM_TOO_LARGE} error for the question,
    and tells its L{AMPTransformClient} when the connection ends.

    @ivar closing: C{True} once the client has chosen to close it.
    """

    closing = False

    def __init__(self, client: "AMPTransformClient") -> None:
        super().__init__(locator=amp.CommandLocator())
        self.maxBoxBytes = maxBoxBytes(client.maxReplyBytes)
        self._client = client
        self._closed: list[Deferred[None]] = []

    def oversizeBoxReceived(self, box: amp.AmpBox, size: int) -> None:
        tag = box.get(amp.ANSWER, box.get(amp.ERROR))
        if tag is None:
            return  # a command; this client answers none
        description = f"the answer is {size} bytes, over this client's limit of {self.maxBoxBytes} bytes"
        error = {
            amp.ERROR: tag,
            amp.ERROR_CODE: b"POEM_TOO_LARGE",
            amp.ERROR_DESCRIPTION: description.encode(),
        }
        self.boxReceived(amp.AmpBox(error), size)

    def whenClosed(self) -> "Deferred[None]":
        """
        A new L{Deferred} that fires once the connection has ended.
        """
        if self.transport is None:
            return succeed(None)
        closed: Deferred[None] = Deferred()
        self._closed.append(closed)
        return closed

    def connectionLost(self, reason: Failure) -> None:
        self._client._connectionLost(self)  # first: failing the questions may ask them again
        super().connectionLost(reason)
        closed, self._closed = self._closed, []
        for waiter in closed:
            waiter.callback(None)


class AMPTransformClient:
    """
    Ask an AMP transform server for transforms, over one connection made
    when first needed and shared by every question asked while it is open.
    A lost connection is made again for the next question; a question whose
    reused connection closes before the answer (the server's idle timeout,
    say) is asked once more on a new one, since transforms have no side
    effects.

    @ivar endpoint: where the server listens.
    @ivar timeout: seconds each question may take, connecting included.
    @ivar maxReplyBytes: the largest answer accepted.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
        timeout: float = 10.0,
        maxReplyBytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.maxReplyBytes = maxReplyBytes
        self._clock = clock
        self._protocol: _ClientAMP | None = None
        self._connecting: Deferred[_ClientAMP] | None = None
        self._waiting: list[Deferred[_ClientAMP]] = []

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the server.

        @return: a L{Deferred} firing with the new poem, or failing with the
            service's error (L{service.errors.UnknownTransform}, ...) as the
            server reported it, L{service.errors.TransformTimeout} when the
            answer is late, or the connection error.
        """
        answer = self._ask(Transform, transform=transform, poem=poem)
        return answer.addCallback(lambda box: box["poem"])

    def listTransforms(self) -> "Deferred[list[tuple[str, str]]]":
        """
        The server's transforms.

        @return: a L{Deferred} firing with a list of C{(name, description)},
            or failing as L{xform} does.
        """
        answer = self._ask(ListTransforms)
        return answer.addCallback(
            lambda box: [(entry["name"], entry["description"]) for entry in box["transforms"]]
        )

    def disconnect(self) -> "Deferred[None]":
        """
        Close the connection, if there is one; questions in flight fail.

        @return: a L{Deferred} that fires once it is closed.
        """
        if self._connecting is not None:
            self._connecting.cancel()
        if self._protocol is None:
            return succeed(None)
        closed = self._protocol.whenClosed()
        self._protocol.closing = True
        self._protocol.transport.loseConnection()
        return closed

    def _ask(self, command: type[amp.Command], **arguments) -> "Deferred[dict]":
        answer = Deferred.fromCoroutine(self._call(command, arguments))
        return withDeadline(answer, self.timeout, self._clock, "no reply")

    async def _call(self, command: type[amp.Command], arguments: dict) -> dict:
        reused = self._protocol is not None
        protocol = await self._connection()
        try:
            return await protocol.callRemote(command, **arguments)
        except ConnectionClosed:
            if not reused or protocol.closing:
                raise
        return await (await self._connection()).callRemote(command, **arguments)

    def _connection(self) -> "Deferred[_ClientAMP]":
        if self._protocol is not None:
            return succeed(self._protocol)
        waiter: Deferred[_ClientAMP] = Deferred(self._stopWaiting)
        self._waiting.append(waiter)
        if self._connecting is None:
            self._connecting = connectProtocol(self.endpoint, _ClientAMP(self))
            self._connecting.addBoth(self._connected)
        return waiter

    def _stopWaiting(self, waiter: "Deferred[_ClientAMP]") -> None:
        self._waiting.remove(waiter)
        if not self._waiting and self._connecting is not None:
            self._connecting.cancel()

    def _connected(self, result: "_ClientAMP | Failure") -> None:
        self._connecting = None
        waiting, self._waiting = self._waiting, []
        if isinstance(result, Failure):
            for waiter in waiting:
                waiter.errback(result)
            return
        self._protocol = result
        for waiter in waiting:
            waiter.callback(result)

    def _connectionLost(self, protocol: _ClientAMP) -> None:
        if self._protocol is protocol:
            self._protocol = None
