"""
Properties of the wire protocols for any input (Hypothesis): netstring
framing and the netstring server fed arbitrary bytes cut anywhere, and
JSON-RPC 2.0 handling of arbitrary JSON.  (The AMP box decoder and server:
L{tests.test_amp_wire}, L{tests.test_amp}; the transforms and the service:
L{tests.test_properties}.)

Each property compares the code with a model written from the contract in
docs/protocols.md; the service behind the protocols is the real one, on a
fake clock, with transforms that fail, stall and misbehave.
"""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from protocols.jsonrpc import ERROR_CODES, MAX_BATCH, MAX_VALUES, countValues
from protocols.jsonrpcserver import MAX_ID_CHARS, JSONRPCServer
from protocols.netstring import TransformFactory, maxRequestBytes
from protocols.netstringwire import MAX_LENGTH_DIGITS, NetstringDecoder, NetstringError
from service import Limits, TransformService
from tests.helpers import misbehavingCatalogue
from tests.test_amp_wire import cutAnywhere

PEER = IPv4Address("TCP", "192.0.2.7", 40000)

#: The limits of the services behind the protocols: small, so that
#: examples reach them.
LIMITS = Limits(maxPoemBytes=100, deadline=1.0)


def service(clock) -> TransformService:
    return TransformService(misbehavingCatalogue(clock), clock, LIMITS)


def failures(events: list[dict]) -> list[dict]:
    """
    The events of C{events} logged with a traceback, but for those of the
    C{explode} transform, which raises on purpose (the service logs what a
    transform raises).
    """
    return [event for event in events if event.get("log_failure") and event.get("transform") != "explode"]


def settle(clock: Clock) -> None:
    """
    Run everything C{clock} has to run: every turn of sliced work at once
    (however many turns a loaded machine needs, each of a millisecond of
    real time), then the deadline of whatever stalls.
    """
    clock.advance(0)
    clock.advance(LIMITS.deadline)


class Logged:
    """
    The log events emitted inside a C{with} block.
    """

    def __enter__(self) -> list[dict]:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        return self.events

    def __exit__(self, *exc_info) -> None:
        globalLogPublisher.removeObserver(self.events.append)


# Netstrings.


def modelNetstrings(data: bytes, limit: int) -> tuple[list[bytes], bool]:
    """
    The payloads of the netstrings at the start of C{data}, as
    docs/protocols.md defines them, and whether what follows them can never
    become a netstring within C{limit} bytes (C{True}) or may yet (C{False}).
    """
    payloads, offset = [], 0
    while True:
        rest = data[offset:]
        digits, colon, after = rest[: MAX_LENGTH_DIGITS + 1].partition(b":")
        if not colon:
            digits = rest[: MAX_LENGTH_DIGITS + 1]
        good = (
            digits.isdigit()
            and len(digits) <= MAX_LENGTH_DIGITS
            and not (len(digits) > 1 and digits[0] == 48)
        )
        if not good and (colon or digits):
            return payloads, True
        if not colon:
            return payloads, False
        length = int(digits)
        if length > limit:
            return payloads, True
        start = offset + len(digits) + 1
        if len(data) < start + length + 1:
            return payloads, False
        if data[start + length] != ord(","):
            return payloads, True
        payloads.append(data[start : start + length])
        offset = start + length + 1


#: Requests, well-formed or not: names of the catalogue and others, poems
#: over the limit, payloads that are not UTF-8 or have no dot.
_payloads = st.one_of(
    st.builds(
        lambda name, poem: name + b"." + poem,
        st.sampled_from(
            [b"rot13", b"cummingsify|reverse", b"echo", b"nope", b"stall", b"explode", b"number", b""]
        ),
        st.one_of(st.binary(max_size=12), st.text(max_size=12).map(str.encode), st.just(b"x" * 101)),
    ),
    st.binary(max_size=12),
)
_netstrings = st.builds(lambda payload: b"%d:%s," % (len(payload), payload), _payloads)
#: Bytes that break the framing, or announce too much.
_breakage = st.one_of(
    st.sampled_from([b"0", b"01:a,", b"99999:", b"1" * 21, b"5:ab", b"3:abc;", b":", b"-1:", b"\n", b" "]),
    st.binary(max_size=6),
)
_streams = st.lists(st.one_of(_netstrings, _netstrings, _netstrings, _breakage), max_size=6).map(b"".join)
_cuts = st.lists(st.integers(min_value=0), max_size=12)


@given(stream=_streams, cuts=_cuts, limit=st.integers(min_value=0, max_value=40))
def test_decoderAtAnyCut(stream, cuts, limit):
    """
    Fed any bytes cut anywhere, L{NetstringDecoder} pops the netstrings of
    the model, in order, and raises L{NetstringError} (only that) exactly
    when the bytes can no longer be a netstring.
    """
    expected, broken = modelNetstrings(stream, limit)
    decoder = NetstringDecoder(limit)
    popped, raised = [], False
    for chunk in cutAnywhere(stream, cuts):
        decoder.feed(chunk)
        try:
            popped.extend(iter(decoder.pop, None))
        except NetstringError:
            raised = True
            break
    assert popped == expected
    assert raised == broken


def served(stream: bytes, cuts: list[int]):
    """
    A gateway's netstring server fed C{stream} cut at C{cuts}, then left
    until every timer has fired.

    @return: what it wrote, its transport, the log events, and the requests
        of the first read that held a whole one or a refusal (the model of
        what it answers).
    """
    clock = MemoryReactorClock()
    factory = TransformFactory(service(clock), clock, idleTimeout=30.0)
    server = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    with Logged() as events:
        server.makeConnection(transport)
        received, batch = b"", None
        for chunk in cutAnywhere(stream, cuts):
            server.dataReceived(chunk)
            received += chunk
            if batch is None:
                payloads, broken = modelNetstrings(received, maxRequestBytes(factory.service))
                if payloads or broken:
                    batch = payloads
        settle(clock)  # every request has its outcome
        clock.advance(30.0)  # every idle timeout has passed
        server.connectionLost(Failure(ConnectionDone()))
    assert clock.getDelayedCalls() == []
    return transport, events, batch or []


def outcome(name: str, poem: str) -> "str | Failure":
    """
    What the service answers C{name} of C{poem}, on a clock of its own.
    """
    clock = Clock()
    results = []
    service(clock).transform(name, poem).addBoth(results.append)
    settle(clock)
    return results[0]


def checkNetstringServer(stream: bytes, cuts: list[int]) -> None:
    """
    Feed a gateway's netstring server C{stream} cut at C{cuts}, and check
    it against the model: it raises nothing, logs no traceback (but the one
    of a transform that raises), and closes the connection; before closing,
    it answers the requests of the first read that held a whole one, in
    order, each with the service's own answer, up to the first it refuses
    (which gets nothing).  (Also the check of the netstring fuzzing target,
    L{tests.fuzz.targets}.)
    """
    transport, events, batch = served(stream, cuts)
    assert failures(events) == []
    assert transport.disconnecting or transport.disconnected
    expected = b""
    for payload in batch:
        name, dot, poem = payload.partition(b".")
        try:
            answer = outcome(name.decode(), poem.decode()) if dot else None
        except UnicodeDecodeError:
            answer = None
        if not isinstance(answer, str):
            break
        expected += b"%d:%s," % (len(answer.encode()), answer.encode())
    assert transport.value() == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=_streams, cuts=_cuts)
def test_netstringServerOnAnyStream(stream, cuts):
    """
    Whatever bytes a client sends, cut anywhere, the netstring server
    behaves as the model says (L{checkNetstringServer}).
    """
    checkNetstringServer(stream, cuts)


# JSON-RPC 2.0.

#: A member left out of a request.
ABSENT = object()

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_ids = st.one_of(
    st.none(),
    st.integers(),
    st.integers(min_value=10**250, max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.text(min_size=MAX_ID_CHARS - 1, max_size=MAX_ID_CHARS + 1, alphabet="ab"),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
_names = st.sampled_from(["rot13", "cummingsify|reverse", "echo", "nope", "stall", "explode", "number", ""])
_poems = st.one_of(st.text(max_size=10), st.just("x" * 101), st.just("\ud800"))
_params = st.one_of(
    st.fixed_dictionaries({"transform": _names, "poem": _poems}),
    st.tuples(_names, _poems).map(list),
    st.fixed_dictionaries({"transform": _names}),
    st.fixed_dictionaries({"transform": _names, "poem": _poems, "extra": _json}),
    st.sampled_from([[], {}]),
    _json,
)
_requests = st.builds(
    lambda jsonrpc, method, params, id: {
        key: value
        for key, value in [("jsonrpc", jsonrpc), ("method", method), ("params", params), ("id", id)]
        if value is not ABSENT
    },
    st.one_of(st.just("2.0"), st.just("2.0"), st.just(ABSENT), _json),
    st.one_of(st.sampled_from(["transform", "transform", "list_transforms", "nope"]), st.just(ABSENT), _json),
    st.one_of(_params, st.just(ABSENT)),
    st.one_of(_ids, st.just(ABSENT)),
)
_messages = st.one_of(_requests, st.lists(st.one_of(_requests, _requests, _json), max_size=5), _json)


def validId(value) -> bool:
    """
    Whether C{value} is an id the gateway echoes: a string, a number or
    null, of at most 256 characters written out.
    """
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    return (not isinstance(value, float) or math.isfinite(value)) and len(str(value)) <= MAX_ID_CHARS


def modelResponse(request) -> dict | None:
    """
    What docs/protocols.md says a request is answered with: C{None} for a
    notification, else C{{"id": ..., "code": ...}}, with code C{None} for a
    result and C{"service"} for one of the service's errors.
    """
    if not isinstance(request, dict):
        return {"id": None, "code": -32600}
    id = request.get("id")
    if (
        request.get("jsonrpc") != "2.0"
        or not isinstance(request.get("method"), str)
        or not validId(id)
        or not isinstance(request.get("params", []), list | dict)
    ):
        return {"id": id if validId(id) else None, "code": -32600}
    if "id" not in request:
        return None
    params = request.get("params", [])
    if request["method"] == "list_transforms":
        return {"id": id, "code": None if params in ([], {}) else -32602}
    if request["method"] != "transform":
        return {"id": id, "code": -32601}
    strings = (
        isinstance(params, list)
        and len(params) == 2
        or isinstance(params, dict)
        and set(params) == {"transform", "poem"}
    )
    if not strings or not all(
        isinstance(value, str) for value in (params if isinstance(params, list) else params.values())
    ):
        return {"id": id, "code": -32602}
    return {"id": id, "code": "result or service"}


def checkResponse(response, expected) -> None:
    assert set(response) in ({"jsonrpc", "result", "id"}, {"jsonrpc", "error", "id"}), response
    assert response["jsonrpc"] == "2.0"
    assert response["id"] == expected["id"] and type(response["id"]) is type(expected["id"]), (
        response,
        expected,
    )
    error = response.get("error")
    if expected["code"] == "result or service":
        if error is None:
            assert set(response["result"]) == {"poem"} and isinstance(response["result"]["poem"], str)
        else:
            assert error["code"] == ERROR_CODES[error["data"]], error
    elif expected["code"] is None:
        assert error is None, response
    else:
        assert error is not None and error["code"] == expected["code"], (response, expected)
    if error is not None:
        assert isinstance(error["message"], str) and error["message"]


def notJSON(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def checkJSONRPC(text: str) -> None:
    """
    Hand a JSON-RPC server C{text} as one message, and check its answer
    against the model: a message over the limits of values or requests is
    refused as a whole with an Invalid Request (id null); text that is not
    JSON (or holds C{NaN}) gets a Parse error (id null); a request, one
    response; a batch, one array of the responses to its requests in
    order, leaving out its notifications (and nothing when it holds
    notifications only), an empty batch and anything else, an Invalid
    Request; every id echoed as it came, or null when it is no valid id;
    the error code the model expects (L{modelResponse}); and no traceback
    logged but a raising transform's.  (Also the check of the JSON-RPC
    fuzzing target, L{tests.fuzz.targets}.)
    """
    clock = Clock()
    rpc = JSONRPCServer(service(clock))
    with Logged() as events:
        answers = []
        rpc.handle(text).addBoth(answers.append)
        settle(clock)
    assert failures(events) == []
    [answer] = answers
    assert not isinstance(answer, Failure), answer
    refused = {"id": None, "code": -32600}
    if countValues(text) > MAX_VALUES:
        checkResponse(json.loads(answer), refused)
        return
    try:
        message = json.loads(text, parse_constant=notJSON)
    except (ValueError, RecursionError):
        checkResponse(json.loads(answer), {"id": None, "code": -32700})
        return
    if not isinstance(message, list):
        expected = modelResponse(message)
        if expected is None:
            assert answer is None
        else:
            checkResponse(json.loads(answer), expected)
    elif not message or len(message) > MAX_BATCH:
        checkResponse(json.loads(answer), refused)
    else:
        expected = [response for response in map(modelResponse, message) if response is not None]
        if not expected:
            assert answer is None
        else:
            found = json.loads(answer)
            assert isinstance(found, list) and len(found) == len(expected), (found, expected)
            for response, model in zip(found, expected, strict=True):
                checkResponse(response, model)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_messages)
def test_jsonrpcAnswersEveryMessagePerSpec(message):
    """
    Any JSON value is answered as JSON-RPC 2.0 says (L{checkJSONRPC}).
    """
    checkJSONRPC(json.dumps(message))


@given(st.text(max_size=30))
def test_jsonrpcAnswersAnyText(text):
    """
    Any text is answered as JSON-RPC 2.0 says (L{checkJSONRPC}): text that
    is not JSON by a Parse error.
    """
    checkJSONRPC(text)
