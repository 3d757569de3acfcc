"""
JSON-RPC 2.0 messages of the transform service, independent of any
transport: the contract the WebSocket face (L{protocols.websocket}) serves.

The contract (U{https://www.jsonrpc.org/specification}), as served here::

    --> {"jsonrpc": "2.0", "method": "transform",
         "params": {"transform": "cummingsify", "poem": "HELLO"}, "id": 1}
    <-- {"jsonrpc": "2.0", "result": {"poem": "hello"}, "id": 1}

    --> {"jsonrpc": "2.0", "method": "transform", "params": ["nope", "HELLO"], "id": "a"}
    <-- {"jsonrpc": "2.0", "error": {"code": 1, "message": "unknown transform 'nope'",
                                     "data": "unknown-transform"}, "id": "a"}

    --> {"jsonrpc": "2.0", "method": "list_transforms", "id": null}
    <-- {"jsonrpc": "2.0", "result": [{"name": "cummingsify", "description": "..."}, ...],
         "id": null}

Methods:

    - C{transform}: params C{{"transform": NAME, "poem": POEM}} or
      C{[NAME, POEM]}, both strings, no other member; result
      C{{"poem": NEW_POEM}}.  NAME may be a pipeline (C{"a|b"}).
    - C{list_transforms}: no params (absent, C{[]} or C{{}}); result a list
      of C{{"name", "description"}}.

Every part of the specification holds: an id may be a string, a number or
C{null} and is echoed as it came; a request without an C{id} member is a
notification and is never answered, whatever happens; a batch (a non-empty
array of requests) is answered by one array holding the answers to its
non-notifications, or by nothing at all when there are none; an empty batch
is one Invalid Request.  The requests of a batch run concurrently, as do the
messages of one connection.

Limits, so that no message holds the server for long: a message may hold at
most L{MAX_VALUES} JSON values (counted before it is parsed, so that no
amount of structure is ever built in memory), and a batch at most
L{MAX_BATCH} requests; a message over either is refused as a whole with one
Invalid Request error (id C{null}), naming the limit.  The transport bounds
the bytes of a message (the WebSocket message limit).

Errors: the standard codes -32700 (parse error: not JSON, or JSON this
server cannot read, such as arrays nested a thousand deep), -32600 (invalid
request), -32601 (method not found), -32602 (invalid params) and -32603
(internal error), with the detail in C{message}; -32000 when the answer
would be longer than the transport's limit (each result is then replaced by
this error); and the service's errors under the codes of L{ERROR_CODES},
with the error's name (C{unknown-transform}, ...) in C{data}.  An invalid request is answered with its id when it has a
valid one, with C{null} otherwise.

This module is the messages alone, without Twisted, so that the blocking
client of L{gateway.syncclient} starts fast: the server that answers them
with the service is L{protocols.jsonrpcserver.JSONRPCServer}; the client
half is L{encodeCall} and L{decodeReply}, shared by the asynchronous and the
blocking WebSocket clients.
"""

import json
from typing import Any

import orjson

from service.errors import ERRORS_BY_NAME, BadRequest, TransformError, TransformFailed

VERSION = "2.0"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: An implementation-defined server error: the answer is too big to send.
ANSWER_TOO_BIG = -32000

#: The application error code of each service error, by the error's name;
#: the name itself travels in C{error.data}.
ERROR_CODES = {
    "unknown-transform": 1,
    "bad-request": 2,
    "poem-too-large": 3,
    "transform-failed": 4,
    "timeout": 5,
    "overloaded": 6,
}

#: What a JSON-RPC message is: a decoded JSON value.
Message = Any


class RPCError(Exception):
    """
    A JSON-RPC error to answer a request with.

    @ivar code: the error code.
    @ivar message: one sentence saying what was wrong.
    @ivar data: the C{data} member, or C{None} to leave it out.
    """

    def __init__(self, code: int, message: str, data: str | None = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def fromServiceError(cls, error: TransformError) -> "RPCError":
        """
        The JSON-RPC form of one of the service's errors.
        """
        return cls(ERROR_CODES.get(error.name, INTERNAL_ERROR), error.message, error.name)

    def asJSON(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _rejectConstant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


#: The most JSON values a message may hold: strings, numbers, literals,
#: arrays and objects, each counted once (a request holds about ten).
MAX_VALUES = 10_000

#: The most requests one batch may hold.
MAX_BATCH = 100

#: Every byte but the quotes, commas and opening brackets that
#: L{overValueLimit} counts: deleting these leaves those (half the time of
#: deleting those and measuring what is left).
_NOT_COUNTED = bytes(sorted(set(range(256)) - set(b'",[{')))


def countValues(data: bytes) -> int:
    """
    How many JSON values, keys included, the UTF-8 JSON C{data} holds,
    counted from its structure alone -- its quotes, commas and opening
    brackets -- without parsing it or building anything, in time linear in
    its length.  For JSON it is never fewer than the values it holds and at
    most three times as many; it never grows with the length of a string (a
    poem counts as one).
    """
    # Escaped backslashes and quotes are not quotes: without them, every
    # other quote opens a string, and what lies between strings is the
    # structure.  (No byte of a character beyond ASCII is ever one of these
    # in UTF-8.)
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    quotes = plain.count(b'"')
    if quotes > 2 * MAX_VALUES:
        return quotes // 2
    structure = b"".join(plain.split(b'"')[::2])
    return quotes // 2 + structure.count(b",") + structure.count(b"[") + structure.count(b"{") + 1


def overValueLimit(data: bytes) -> bool:
    """
    Whether the UTF-8 JSON C{data} holds more than L{MAX_VALUES} values, as
    L{countValues} counts them.  Most messages are known to be within the
    limit from a bound that costs a fraction of the count: L{countValues}
    is never more than one plus the quotes, commas and opening brackets
    anywhere in C{data}, in its strings too, and so never more than one
    plus its length.
    """
    if len(data) < MAX_VALUES:
        return False
    if len(data.translate(None, _NOT_COUNTED)) < MAX_VALUES:
        return False
    return countValues(data) > MAX_VALUES


def parse(text: str | bytes) -> Message:
    """
    Decode one JSON-RPC message (text, or UTF-8 bytes), with C{orjson}
    where it reads the message as the standard library does, else with the
    standard library.

    @raise RPCError: with L{PARSE_ERROR} if C{text} is not JSON (nor
        UTF-8), holds C{NaN} or C{Infinity}, or cannot be read here
        (nesting deeper than the interpreter's recursion limit, a number of
        thousands of digits).
    """
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        # Not JSON, or JSON that orjson refuses but the standard library
        # reads: lone surrogates, numbers beyond a double's range.  The
        # standard library decides, as it always has.
        return _parseExactly(text)
    if _floatIds(message):
        # orjson reads an integer beyond 64 bits as a float, and an id is
        # the only number an answer echoes: read it exactly.
        return _parseExactly(text)
    return message


def _floatIds(message: Message) -> bool:
    """
    Whether a request of C{message}, or C{message} itself, has a float id.
    """
    if isinstance(message, dict):
        return isinstance(message.get("id"), float)
    if isinstance(message, list):
        return any(isinstance(item, dict) and isinstance(item.get("id"), float) for item in message)
    return False


def _parseExactly(text: str | bytes) -> Message:
    """
    L{parse} with the standard library alone.
    """
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")  # not json.loads' guess at the encoding
        return json.loads(text, parse_constant=_rejectConstant)
    except RecursionError:
        raise RPCError(PARSE_ERROR, "Parse error: the JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, not UTF-8, numbers too long to convert
        raise RPCError(PARSE_ERROR, f"Parse error: {error}") from None


def encode(message: Message) -> bytes:
    """
    Encode a message as compact JSON in UTF-8, non-ASCII text as it is,
    with C{orjson}.  What orjson does not write, the standard library
    writes: an integer beyond 64 bits (an id), and a string that UTF-8
    cannot carry (a lone surrogate, which a client may send in an id),
    which is escaped.

    No number in a message is ever NaN or infinite (an id must be finite),
    which orjson would write as C{null}.
    """
    try:
        return orjson.dumps(message)
    except orjson.JSONEncodeError:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(message, allow_nan=False, separators=(",", ":")).encode("ascii")


def errorResponse(error: RPCError, id: Message = None) -> dict:
    """
    The response object reporting C{error} for the request C{id}.
    """
    return {"jsonrpc": VERSION, "error": error.asJSON(), "id": id}


def encodeCall(method: str, params: Message, id: int | str) -> str:
    """
    A request calling C{method} with C{params}, expecting an answer to C{id}.
    """
    return encode({"jsonrpc": VERSION, "method": method, "params": params, "id": id}).decode("utf-8")


def serviceError(error: Message) -> TransformError:
    """
    The service error a JSON-RPC error object stands for: the class named
    by C{data} when there is one, L{BadRequest} for a request the server
    could not take (codes -32700 to -32600), L{TransformFailed} otherwise.
    """
    if not isinstance(error, dict):
        return TransformFailed(f"unreadable JSON-RPC error {error!r}")
    message = str(error.get("message", "no message"))
    errorClass = ERRORS_BY_NAME.get(error.get("data"))
    if errorClass is not None:
        return errorClass(message)
    if error.get("code") in (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS):
        return BadRequest(f"JSON-RPC error {error['code']}: {message}")
    return TransformFailed(f"JSON-RPC error {error.get('code')}: {message}")


def decodeReply(text: str, id: int | str) -> Message:
    """
    The result of the response to the request C{id}.

    @raise TransformError: the service error the response reports (see
        L{serviceError}), or L{TransformFailed} if C{text} is not a response
        to C{id}.
    """
    try:
        response = parse(text)
    except RPCError as error:
        raise TransformFailed(f"unreadable JSON-RPC response: {error.message}") from None
    if not isinstance(response, dict) or response.get("jsonrpc") != VERSION or response.get("id") != id:
        raise TransformFailed(f"not a JSON-RPC response to request {id!r}: {text[:200]!r}")
    if "error" in response:
        raise serviceError(response["error"])
    if "result" not in response:
        raise TransformFailed(f"a JSON-RPC response with neither result nor error: {text[:200]!r}")
    return response["result"]


def poemOf(result: Message) -> str:
    """
    The poem in a C{transform} call's result.

    @raise TransformFailed: if the result is not C{{"poem": "..."}}.
    """
    if not isinstance(result, dict) or not isinstance(result.get("poem"), str):
        raise TransformFailed(f"the result holds no poem: {str(result)[:200]!r}")
    return result["poem"]
