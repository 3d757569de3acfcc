"""
JSON-RPC 2.0 over the transform service, independent of any transport: the
WebSocket adapter of L{protocols.websocket} hands it each text message and
sends back what it answers.

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

Errors: the standard codes -32700 (parse error: not JSON, or JSON this
server cannot read, such as arrays nested a thousand deep), -32600 (invalid
request), -32601 (method not found), -32602 (invalid params) and -32603
(internal error), with the detail in C{message}; -32000 when the answer
would be longer than the transport's limit (each result is then replaced by
this error); and the service's errors under the codes of L{ERROR_CODES},
with the error's name (C{unknown-transform}, ...) in C{data}.  An invalid request is answered with its id when it has a
valid one, with C{null} otherwise.

The client half is L{encodeCall} and L{decodeReply}, shared by the
asynchronous and the blocking WebSocket clients.
"""

import json
import math
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults, succeed
from twisted.logger import Logger

from protocols.common import transformsListing
from service.errors import ERRORS_BY_NAME, BadRequest, TransformError, TransformFailed
from service.transformer import TransformService

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


def parse(text: str) -> Message:
    """
    Decode one JSON-RPC message.

    @raise RPCError: with L{PARSE_ERROR} if C{text} is not JSON, holds
        C{NaN} or C{Infinity}, or cannot be read here (nesting deeper than
        the interpreter's recursion limit, a number of thousands of digits).
    """
    try:
        return json.loads(text, parse_constant=_rejectConstant)
    except RecursionError:
        raise RPCError(PARSE_ERROR, "Parse error: the JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, and numbers too long to convert
        raise RPCError(PARSE_ERROR, f"Parse error: {error}") from None


def encode(message: Message) -> str:
    """
    Encode a message as compact JSON, non-ASCII text as it is.  A string
    that UTF-8 cannot carry (a lone surrogate, which a client may send in an
    id) is escaped instead.
    """
    text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(message, allow_nan=False, separators=(",", ":"))
    return text


def errorResponse(error: RPCError, id: Message = None) -> dict:
    """
    The response object reporting C{error} for the request C{id}.
    """
    return {"jsonrpc": VERSION, "error": error.asJSON(), "id": id}


def _validId(value: Message) -> bool:
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _describe(value: Message) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )


def _bind(params: Message, names: tuple[str, ...]) -> list[str]:
    """
    The string arguments C{names}, given by position or by name.

    @raise RPCError: with L{INVALID_PARAMS} if they are missing, extra, or
        not strings.
    """
    if params is None:
        params = []
    if isinstance(params, list):
        if len(params) != len(names):
            expected = ", ".join(names) or "none"
            raise RPCError(
                INVALID_PARAMS, f"Invalid params: expected {len(names)} ({expected}), got {len(params)}"
            )
        arguments = params
    else:
        missing = [name for name in names if name not in params]
        extra = sorted(set(params) - set(names))
        if missing:
            raise RPCError(INVALID_PARAMS, f"Invalid params: missing {', '.join(missing)}")
        if extra:
            raise RPCError(INVALID_PARAMS, f"Invalid params: unknown {', '.join(map(repr, extra))}")
        arguments = [params[name] for name in names]
    for name, value in zip(names, arguments, strict=True):
        if not isinstance(value, str):
            raise RPCError(INVALID_PARAMS, f"Invalid params: {name} must be a string, not {_describe(value)}")
    return arguments


class JSONRPCServer:
    """
    Answer JSON-RPC 2.0 messages with a L{TransformService}.

    @ivar service: the transform service called.
    @ivar methods: the callable for each method name, taking the request's
        params and returning the result or a L{Deferred} of it.
    @ivar maxAnswerBytes: the longest answer the transport can send, in
        bytes of UTF-8, or C{None} for no limit.
    """

    log = Logger()

    def __init__(self, service: TransformService, maxAnswerBytes: int | None = None) -> None:
        self.service = service
        self.maxAnswerBytes = maxAnswerBytes
        self.methods: dict[str, Callable[[Message], Message]] = {
            "transform": self._transform,
            "list_transforms": self._listTransforms,
        }

    def _transform(self, params: Message) -> "Deferred[dict]":
        name, poem = _bind(params, ("transform", "poem"))
        return self.service.transform(name, poem).addCallback(lambda poem: {"poem": poem})

    def _listTransforms(self, params: Message) -> list[dict]:
        _bind(params, ())
        return transformsListing(self.service)

    def handle(self, text: str) -> "Deferred[str | None]":
        """
        Answer one message.

        @param text: the message, a request or a batch.
        @return: a L{Deferred} firing with the answer to send, or with
            C{None} when there is nothing to send (notifications only).
            Cancelling it abandons the requests still running.
        """
        try:
            message = parse(text)
        except RPCError as error:
            return succeed(encode(errorResponse(error)))
        return Deferred.fromCoroutine(self._answer(message))

    def refuse(self, reason: str) -> str:
        """
        The answer to a message that cannot be a request at all (a binary
        WebSocket frame): an Invalid Request error with a C{null} id.
        """
        return encode(errorResponse(RPCError(INVALID_REQUEST, f"Invalid Request: {reason}")))

    async def _answer(self, message: Message) -> str | None:
        if isinstance(message, list):
            if not message:
                return encode(errorResponse(RPCError(INVALID_REQUEST, "Invalid Request: the batch is empty")))
            try:
                responses = await gatherResults(
                    [Deferred.fromCoroutine(self._call(item)) for item in message], consumeErrors=True
                )
            except FirstError as error:  # only ever a cancellation: _call answers everything else
                error.subFailure.raiseException()
            answered = [response for response in responses if response is not None]
            return self._fit(answered) if answered else None
        response = await self._call(message)
        return None if response is None else self._fit(response)

    def _fit(self, answer: dict | list[dict]) -> str:
        """
        Encode C{answer}; if that is longer than L{maxAnswerBytes}, replace
        each of its results with an L{ANSWER_TOO_BIG} error instead.
        """
        text = encode(answer)
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if self.maxAnswerBytes is None or size <= self.maxAnswerBytes:
            return text
        error = RPCError(
            ANSWER_TOO_BIG,
            f"Server error: the answer is {size} bytes, over the limit of {self.maxAnswerBytes} bytes "
            "for one message; send fewer or smaller requests at once",
        )
        responses = [
            errorResponse(error, response["id"]) if "result" in response else response
            for response in (answer if isinstance(answer, list) else [answer])
        ]
        return encode(responses if isinstance(answer, list) else responses[0])

    async def _call(self, request: Message) -> dict | None:
        """
        The response object to one request, or C{None} for a notification.
        An invalid request is answered even without an id: it is no
        notification, since it is no request.
        """
        if not isinstance(request, dict):
            return errorResponse(
                RPCError(
                    INVALID_REQUEST, f"Invalid Request: a request is an object, not {_describe(request)}"
                )
            )
        id = request.get("id")
        notification = "id" not in request
        try:
            method = self._method(request)
            result = method(request.get("params"))
            if isinstance(result, Deferred):
                result = await result
        except RPCError as error:
            if error.code == INVALID_REQUEST:
                return errorResponse(error, id if _validId(id) else None)
            return None if notification else errorResponse(error, id)
        except TransformError as error:
            return None if notification else errorResponse(RPCError.fromServiceError(error), id)
        except CancelledError:
            raise
        except Exception:
            self.log.failure("JSON-RPC method {method!r} raised", method=request["method"])
            return None if notification else errorResponse(RPCError(INTERNAL_ERROR, "Internal error"), id)
        return None if notification else {"jsonrpc": VERSION, "result": result, "id": id}

    def _method(self, request: dict) -> Callable[[Message], Message]:
        """
        The method a request calls.

        @raise RPCError: with L{INVALID_REQUEST} if C{request} is not a
            well-formed request object, with L{METHOD_NOT_FOUND} if there is
            no such method.
        """
        problem = None
        if request.get("jsonrpc") != VERSION:
            problem = 'jsonrpc must be exactly "2.0"'
        elif not isinstance(request.get("method"), str):
            problem = "method must be a string"
        elif not _validId(request.get("id")):
            problem = "id must be a string, a number or null"
        elif not isinstance(request.get("params", []), list | dict):
            problem = "params must be an array or an object"
        if problem:
            raise RPCError(INVALID_REQUEST, f"Invalid Request: {problem}")
        try:
            return self.methods[request["method"]]
        except KeyError:
            raise RPCError(
                METHOD_NOT_FOUND,
                f"Method not found: {request['method'][:64]!r} (there are {', '.join(self.methods)})",
            ) from None


# The client half.


def encodeCall(method: str, params: Message, id: int | str) -> str:
    """
    A request calling C{method} with C{params}, expecting an answer to C{id}.
    """
    return encode({"jsonrpc": VERSION, "method": method, "params": params, "id": id})


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
