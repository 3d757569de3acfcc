"""
The JSON-RPC 2.0 server of the transform service, independent of any
transport: the WebSocket adapter of L{protocols.websocket} hands it each text
message and sends back what it answers.  The contract, and the messages
themselves, are in L{protocols.jsonrpc}.
"""

import math
from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from protocols.atonce import then
from protocols.jsonrpc import (
    ANSWER_TOO_BIG,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    MAX_VALUES,
    METHOD_NOT_FOUND,
    VERSION,
    Message,
    RPCError,
    encode,
    errorResponse,
    overValueLimit,
    parse,
)
from protocols.listing import transformsListing
from protocols.observer import OK, UNOBSERVED, IServerObserver, stopwatch
from service.errors import BadRequest, TransformError
from service.transformer import Caller, TransformService

#: The longest id echoed, in characters (of a string, or of a number
#: written out): so that no answer of errors is ever over the transport's
#: message limit.
MAX_ID_CHARS = 256


def _validId(value: Message) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return len(value) <= MAX_ID_CHARS
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return (isinstance(value, int) or math.isfinite(value)) and len(str(value)) <= MAX_ID_CHARS
    return False


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
        try:
            arguments = [params[name] for name in names]
        except KeyError:
            missing = [name for name in names if name not in params]
            raise RPCError(INVALID_PARAMS, f"Invalid params: missing {', '.join(missing)}") from None
        if len(params) != len(names):
            extra = sorted(set(params) - set(names))
            raise RPCError(INVALID_PARAMS, f"Invalid params: unknown {', '.join(map(repr, extra))}")
    for name, value in zip(names, arguments, strict=True):
        if not isinstance(value, str):
            raise RPCError(INVALID_PARAMS, f"Invalid params: {name} must be a string, not {_describe(value)}")
    return arguments


def _passOn(failure: Failure) -> Failure:
    return failure


def _firstFailure(failure: Failure) -> Failure:
    """
    The failure of the request that failed a batch's L{gatherResults}: only
    ever a cancellation, since every other error is answered.
    """
    failure.trap(FirstError)
    return failure.value.subFailure


class JSONRPCServer:
    """
    Answer JSON-RPC 2.0 messages with a L{TransformService}.

    A message whose requests the service answers at once -- most of them --
    is answered in the same call; any other gets a L{Deferred} of its
    answer.  Both go through the same code (L{protocols.atonce.then}).

    @ivar service: the transform service called.
    @ivar methods: the callable for each method name, taking the request's
        params and the L{Caller}, and returning the result, a L{Failure},
        or a L{Deferred} of the result.
    @ivar maxAnswerBytes: the longest answer the transport can send, in
        bytes of UTF-8, or C{None} for no limit.
    @ivar observer: told how each C{transform} request ended.
    """

    log = Logger()

    def __init__(
        self,
        service: TransformService,
        maxAnswerBytes: int | None = None,
        observer: IServerObserver = UNOBSERVED,
        clock: IReactorTime | None = None,
    ) -> None:
        """
        @param clock: times the requests for the observer.
        """
        self.service = service
        self.maxAnswerBytes = maxAnswerBytes
        self.observer = observer
        self._now = stopwatch(clock)
        self.methods: dict[str, Callable[[Message, Caller | None], Message]] = {
            "transform": self._transform,
            "list_transforms": self._listTransforms,
        }

    def _transform(self, params: Message, caller: Caller | None) -> "dict | Failure | Deferred[dict]":
        started = self._now()
        try:
            name, poem = _bind(params, ("transform", "poem"))
        except RPCError:
            self.observer.requestServed("", BadRequest.name, 0.0)
            raise
        return then(
            self.service.transform(name, poem, caller),
            self._served,
            self._refused,
            (name, started),
            (name, started),
        )

    def _served(self, poem: str, name: str, started: float) -> dict:
        self.observer.requestServed(name, OK, self._now() - started)
        return {"poem": poem}

    def _refused(self, failure: Failure, name: str, started: float) -> Failure:
        if isinstance(failure.value, TransformError):
            self.observer.requestServed(name, failure.value.name, self._now() - started)
        return failure

    def _listTransforms(self, params: Message, caller: Caller | None) -> "Deferred[list[dict]]":
        _bind(params, ())
        return self.service.listing().addCallback(transformsListing)

    def answer(
        self,
        message: bytes,
        caller: Caller | None = None,
        onRefusal: Callable[[TransformError], None] | None = None,
    ) -> "bytes | None | Deferred[bytes | None]":
        """
        Answer one message.

        @param message: the message, a request or a batch, in UTF-8.
        @param caller: who asks, for the service's caps on requests in
            flight.
        @param onRefusal: called with each error of the service that a
            request is answered with, for the transport to log.
        @return: the answer to send, in UTF-8, or C{None} when there is
            nothing to send (notifications only): at once when every
            request of the message was answered at once, else a
            L{Deferred} firing with it.  Cancelling that abandons the
            requests still running.
        """
        try:
            message = self._read(message)
        except RPCError as error:
            return encode(errorResponse(error))
        if not isinstance(message, list):
            return then(self._respond(message, caller, onRefusal), self._fit, _passOn)
        if not message:
            return encode(errorResponse(RPCError(INVALID_REQUEST, "Invalid Request: the batch is empty")))
        responses = [self._respond(request, caller, onRefusal) for request in message]
        if not any(isinstance(response, Deferred) for response in responses):
            return self._fitBatch(responses)
        running = [
            response if isinstance(response, Deferred) else succeed(response) for response in responses
        ]
        return gatherResults(running, consumeErrors=True).addCallbacks(self._fitBatch, _firstFailure)

    def _read(self, message: bytes) -> Message:
        """
        The message, decoded.

        @raise RPCError: if it is not JSON, or over the limits.
        """
        if overValueLimit(message):
            raise RPCError(
                INVALID_REQUEST,
                f"Invalid Request: a message holds at most {MAX_VALUES:,} JSON values; "
                "send fewer requests at once",
            )
        message = parse(message)
        if isinstance(message, list) and len(message) > MAX_BATCH:
            raise RPCError(
                INVALID_REQUEST,
                f"Invalid Request: a batch holds at most {MAX_BATCH:,} requests; "
                f"this one holds {len(message):,}",
            )
        return message

    def refuse(self, reason: str) -> bytes:
        """
        The answer to a message that cannot be a request at all (a binary
        WebSocket frame): an Invalid Request error with a C{null} id.
        """
        return encode(errorResponse(RPCError(INVALID_REQUEST, f"Invalid Request: {reason}")))

    def _fitBatch(self, responses: list[dict | None]) -> bytes | None:
        answered = [response for response in responses if response is not None]
        return self._fit(answered) if answered else None

    def _fit(self, answer: dict | list[dict] | None) -> bytes | None:
        """
        Encode C{answer}; if that is longer than L{maxAnswerBytes}, replace
        each of its results with an L{ANSWER_TOO_BIG} error instead.
        """
        if answer is None:
            return None
        data = encode(answer)
        if self.maxAnswerBytes is None or len(data) <= self.maxAnswerBytes:
            return data
        error = RPCError(
            ANSWER_TOO_BIG,
            f"Server error: the answer is {len(data)} bytes, over the limit of {self.maxAnswerBytes} bytes "
            "for one message; send fewer or smaller requests at once",
        )
        responses = [
            errorResponse(error, response["id"]) if "result" in response else response
            for response in (answer if isinstance(answer, list) else [answer])
        ]
        return encode(responses if isinstance(answer, list) else responses[0])

    def _respond(
        self, request: Message, caller: Caller | None, onRefusal
    ) -> "dict | None | Deferred[dict | None]":
        """
        The response object to one request, or C{None} for a notification:
        at once if its method answered at once, else a L{Deferred} of it.
        An invalid request is answered even without an id: it is no
        notification, since it is no request.
        """
        if not isinstance(request, dict):
            return errorResponse(
                RPCError(
                    INVALID_REQUEST, f"Invalid Request: a request is an object, not {_describe(request)}"
                )
            )
        try:
            result = self._method(request)(request.get("params"), caller)
        except Exception:
            result = Failure()
        return then(result, self._result, self._error, (request,), (request, onRefusal))

    def _result(self, result: Message, request: dict) -> dict | None:
        if "id" not in request:
            return None
        return {"jsonrpc": VERSION, "result": result, "id": request["id"]}

    def _error(self, failure: Failure, request: dict, onRefusal) -> "dict | None | Failure":
        """
        The response reporting why a request failed; a cancellation passes
        on.
        """
        error = failure.value
        if isinstance(error, CancelledError):
            return failure
        id = request.get("id")
        if isinstance(error, RPCError):
            if error.code == INVALID_REQUEST:
                return errorResponse(error, id if _validId(id) else None)
        elif isinstance(error, TransformError):
            if onRefusal is not None:
                onRefusal(error)
            error = RPCError.fromServiceError(error)
        else:
            self.log.failure("JSON-RPC method {method!r} raised", failure, method=request["method"])
            error = RPCError(INTERNAL_ERROR, "Internal error")
        return errorResponse(error, id) if "id" in request else None

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
            problem = f"id must be a string, a number or null, of at most {MAX_ID_CHARS} characters"
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
