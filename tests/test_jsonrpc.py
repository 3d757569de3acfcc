"""
The JSON-RPC 2.0 module on plain data: messages in, answers out, over a
service on a fake clock; no transport.
"""

import json

from hypothesis import given, strategies
from twisted.internet.defer import CancelledError, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from protocols.jsonrpc import (
    ANSWER_TOO_BIG,
    ERROR_CODES,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_BATCH,
    MAX_VALUES,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    countValues,
    decodeReply,
    encode,
    encodeCall,
    overValueLimit,
    serviceError,
)
from protocols.jsonrpcserver import MAX_ID_CHARS, JSONRPCServer
from protocols.listing import listedTransforms
from service import (
    BadRequest,
    Limits,
    Overloaded,
    PoemTooLarge,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
)
from service.errors import ERRORS_BY_NAME
from tests.helpers import captureLogs, misbehavingCatalogue


def answered(rpc, text):
    """
    A L{Deferred} of C{rpc}'s answer to the JSON C{text}, fired already if
    it was answered at once.
    """
    return maybeDeferred(rpc.answer, text.encode("utf-8"))


def call(method, params=None, id=1, **extra):
    request = {"jsonrpc": "2.0", "method": method, "id": id, **extra}
    if params is not None:
        request["params"] = params
    return request


def result(value, id=1):
    return {"jsonrpc": "2.0", "result": value, "id": id}


def withoutMessages(answer):
    for response in answer:
        if "error" in response:
            assert response["error"].pop("message")
    return answer


def error(code, id=1, data=None):
    """
    An expected error response; the message is checked separately.
    """
    response = {"jsonrpc": "2.0", "error": {"code": code}, "id": id}
    if data is not None:
        response["error"]["data"] = data
    return response


class JSONRPCServerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.service = TransformService(
            misbehavingCatalogue(self.clock),
            self.clock,
            Limits(maxPoemBytes=100, deadline=1.0, maxInFlight=2),
        )
        self.rpc = JSONRPCServer(self.service)

    def answer(self, message):
        """
        The decoded answer to C{message} (JSON text, or a value to encode),
        once it has come.
        """
        text = message if isinstance(message, str) else json.dumps(message)
        answer = self.successResultOf(answered(self.rpc, text))
        return None if answer is None else json.loads(answer)

    def assertAnswer(self, message, expected):
        """
        The answer matches C{expected}, error messages aside: every error
        has a non-empty message, which is dropped before comparing.
        """
        answer = self.answer(message)
        for response in answer if isinstance(answer, list) else [answer] if answer else []:
            if "error" in response:
                self.assertIsInstance(response["error"].pop("message"), str)
        self.assertEqual(answer, expected)

    def test_transformByName(self):
        self.assertAnswer(
            call("transform", {"transform": "cummingsify", "poem": "HELLO"}), result({"poem": "hello"})
        )

    def test_transformByPosition(self):
        self.assertAnswer(call("transform", ["reverse", "a\nb"], id="x"), result({"poem": "b\na"}, id="x"))

    def test_listTransforms(self):
        for params in (None, [], {}):
            answer = self.answer(call("list_transforms", params))
            names = [entry["name"] for entry in answer["result"]]
            self.assertEqual(names, [entry.name for entry in self.service.transforms()])
            self.assertEqual(set(answer["result"][0]), {"name", "description"})

    def test_ids(self):
        """
        String, number and null ids are echoed exactly, integers of any
        size included.
        """
        huge = 10**40 + 1
        for id in ["abc", "", 0, -7, 1.5, huge, None]:
            self.assertAnswer(call("transform", ["rot13", "a"], id=id), result({"poem": "n"}, id=id))
        text = self.successResultOf(
            answered(self.rpc, json.dumps(call("transform", ["rot13", "a"], id=huge)))
        )
        self.assertIn(f'"id":{huge}'.encode(), text)

    def test_idsBeyond64Bits(self):
        """
        Integer ids beyond 64 bits, which orjson would read as floats, come
        back exactly, alone and in batches; float ids come back as the same
        numbers.
        """
        for id in [2**64, -(2**63) - 1, 10**100 + 7, 1e300, 0.1, -1.5e-7]:
            self.assertAnswer(call("transform", ["rot13", "a"], id=id), result({"poem": "n"}, id=id))
            self.assertAnswer(
                [call("transform", ["rot13", "a"], id=1), call("transform", ["rot13", "b"], id=id)],
                [result({"poem": "n"}, id=1), result({"poem": "o"}, id=id)],
            )

    def test_answerInUTF8(self):
        """
        The answer is compact JSON in UTF-8, its text beyond ASCII as it is.
        """
        data = self.successResultOf(answered(self.rpc, json.dumps(call("transform", ["cummingsify", "ÉTÉ"]))))
        self.assertEqual(data, '{"jsonrpc":"2.0","result":{"poem":"été"},"id":1}'.encode())

    def test_notUTF8(self):
        """
        A message that is not UTF-8 (which a WebSocket text message always
        is) is a parse error.
        """
        answer = json.loads(self.successResultOf(maybeDeferred(self.rpc.answer, b'{"id": "\xff"}')))
        self.assertEqual((answer["error"]["code"], answer["id"]), (PARSE_ERROR, None))

    def test_answeredAtOnce(self):
        """
        A message whose requests the service answers at once is answered in
        the same call, a batch too; one that waits for a transform gets a
        L{Deferred}.
        """
        single = self.rpc.answer(json.dumps(call("transform", ["rot13", "a"])).encode())
        self.assertEqual(json.loads(single), result({"poem": "n"}))
        batch = [call("transform", ["rot13", "a"], id=1), call("nope", id=2), call("list_transforms", id=3)]
        self.assertEqual(len(json.loads(self.rpc.answer(json.dumps(batch).encode()))), 3)
        waiting = self.rpc.answer(json.dumps(call("transform", ["echo", "a"])).encode())
        self.assertNoResult(waiting)
        self.clock.advance(0)
        self.assertEqual(json.loads(self.successResultOf(waiting)), result({"poem": "a … a … a"}))

    def test_invalidIds(self):
        """
        An id that is not a string, a number or null makes the request
        invalid, and the answer's id is null.
        """
        for id in [True, [1], {"a": 1}, "x" * (MAX_ID_CHARS + 1), 10**MAX_ID_CHARS]:
            self.assertAnswer(call("transform", ["rot13", "a"], id=id), error(INVALID_REQUEST, id=None))
        self.assertAnswer(
            call("transform", ["rot13", "a"], id="x" * MAX_ID_CHARS),
            result({"poem": "n"}, "x" * MAX_ID_CHARS),
        )
        infinite = '{"jsonrpc": "2.0", "method": "list_transforms", "id": 1e400}'
        self.assertAnswer(infinite, error(INVALID_REQUEST, id=None))

    def test_invalidRequests(self):
        """
        Malformed request objects get -32600, with their id when it is a
        valid one, even when they have no id (they are no notifications).
        """
        cases = [
            ({"method": "list_transforms", "id": 1}, 1),
            ({"jsonrpc": "1.0", "method": "list_transforms", "id": 2}, 2),
            ({"jsonrpc": 2.0, "method": "list_transforms", "id": 3}, 3),
            ({"jsonrpc": "2.0", "method": 42, "id": 4}, 4),
            ({"jsonrpc": "2.0", "id": 5}, 5),
            ({"jsonrpc": "2.0", "method": "transform", "params": "poem", "id": 6}, 6),
            ({"jsonrpc": "2.0", "method": "transform", "params": None, "id": 7}, 7),
            ({"jsonrpc": "2.0", "method": 1, "params": "bar"}, None),
            ({"foo": "boo"}, None),
        ]
        for request, id in cases:
            self.assertAnswer(request, error(INVALID_REQUEST, id=id))
        for notAnObject in ["1", '"x"', "null", "true"]:
            self.assertAnswer(notAnObject, error(INVALID_REQUEST, id=None))

    def test_parseErrors(self):
        for text in [
            "{",
            '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
            "",
            "NaN",
            "[Infinity]",
        ]:
            self.assertAnswer(text, error(PARSE_ERROR, id=None))

    def test_deeplyNested(self):
        """
        JSON nested deeper than the parser can go is a parse error, not a
        crash.
        """
        self.assertAnswer("[" * 5_000 + "]" * 5_000, error(PARSE_ERROR, id=None))
        answer = self.answer("[" * 5_000)
        self.assertEqual(answer["error"]["code"], PARSE_ERROR)

    def test_tooManyValues(self):
        """
        A message of more than L{MAX_VALUES} values is refused as a whole
        before it is parsed, nested or not, in a batch or not.
        """
        for text in [
            "[" + "1," * MAX_VALUES + "1]",
            "[" * 100_000,
            json.dumps({str(i): 0 for i in range(MAX_VALUES)}),
        ]:
            answer = self.answer(text)
            self.assertEqual(answer["error"]["code"], INVALID_REQUEST, text[:20])
            self.assertIn(f"at most {MAX_VALUES:,} JSON values", answer["error"]["message"])
            self.assertIsNone(answer["id"])

    def test_stringsAreOneValue(self):
        """
        However long and whatever it holds, a poem is one value: only the
        message's structure counts.
        """
        poem = '"],{[\\,:' * MAX_VALUES
        service = TransformService(misbehavingCatalogue(self.clock), self.clock, Limits(maxPoemBytes=200_000))
        answer = answered(JSONRPCServer(service), json.dumps(call("transform", ["reverse", poem])))
        while not answer.called:  # a long poem is worked through in slices, one per turn
            self.clock.advance(0)
        self.assertEqual(json.loads(self.successResultOf(answer)), result({"poem": poem}))

    def test_batchOfAtMostMaxBatch(self):
        """
        A batch of more than L{MAX_BATCH} requests is refused as a whole; one
        of L{MAX_BATCH} is answered.
        """
        answer = self.answer([call("transform", ["rot13", "a"], i) for i in range(MAX_BATCH + 1)])
        self.assertEqual((answer["error"]["code"], answer["id"]), (INVALID_REQUEST, None))
        self.assertIn(
            f"a batch holds at most {MAX_BATCH} requests; this one holds 101", answer["error"]["message"]
        )
        answer = self.answer([call("transform", ["rot13", "a"], i) for i in range(MAX_BATCH)])
        self.assertEqual([response["result"] for response in answer], [{"poem": "n"}] * MAX_BATCH)

    def test_nestingWithinReachIsInvalidParams(self):
        nested = {"transform": "rot13", "poem": [[[[["deep"]]]]]}
        self.assertAnswer(call("transform", nested), error(INVALID_PARAMS))

    def test_methodNotFound(self):
        for method in ["nope", "Transform", "__init__", "_transform", "answer", ""]:
            self.assertAnswer(call(method, []), error(METHOD_NOT_FOUND))

    def test_invalidParams(self):
        cases = [
            [],
            ["rot13"],
            ["rot13", "a", "b"],
            [1, "poem"],
            ["rot13", None],
            {"transform": "rot13"},
            {"poem": "a"},
            {"transform": "rot13", "poem": "a", "extra": 1},
            {"transform": ["rot13"], "poem": "a"},
            {"transform": "rot13", "poem": 42},
        ]
        for params in cases:
            self.assertAnswer(call("transform", params), error(INVALID_PARAMS))
        self.assertAnswer(call("list_transforms", ["extra"]), error(INVALID_PARAMS))
        self.assertAnswer(call("list_transforms", {"all": True}), error(INVALID_PARAMS))

    def test_serviceErrors(self):
        """
        Each of the service's errors has its code, and its name as data.
        """
        self.assertAnswer(
            call("transform", ["nope", "a"]),
            error(ERROR_CODES["unknown-transform"], data="unknown-transform"),
        )
        self.assertAnswer(
            call("transform", ["rot13||rot13", "a"]), error(ERROR_CODES["bad-request"], data="bad-request")
        )
        self.assertAnswer(
            call("transform", ["rot13", "a" * 101]),
            error(ERROR_CODES["poem-too-large"], data="poem-too-large"),
        )
        self.assertAnswer(
            call("transform", ["number", "a"]),
            error(ERROR_CODES["transform-failed"], data="transform-failed"),
        )
        self.assertAnswer(
            call("transform", ["rot13", "\ud800"]), error(ERROR_CODES["bad-request"], data="bad-request")
        )

    def test_errorMessages(self):
        answer = self.answer(call("transform", ["nope", "a"]))
        self.assertEqual(answer["error"]["message"], "unknown transform 'nope'")
        answer = self.answer(call("transform", {"transform": "rot13"}))
        self.assertEqual(answer["error"]["message"], "Invalid params: missing poem")

    def test_timeoutAndOverloaded(self):
        stalled = answered(self.rpc, json.dumps(call("transform", ["stall", "a"], id=1)))
        answered(self.rpc, json.dumps(call("transform", ["stall", "a"], id=2)))
        self.assertAnswer(
            call("transform", ["rot13", "a"], id=3), error(ERROR_CODES["overloaded"], 3, "overloaded")
        )
        self.assertNoResult(stalled)
        self.clock.advance(1.0)
        answer = json.loads(self.successResultOf(stalled))
        self.assertEqual(answer["error"]["data"], "timeout")
        self.assertEqual(answer["error"]["code"], ERROR_CODES["timeout"])

    def test_internalError(self):
        """
        A method that raises something unexpected is answered with -32603,
        and the error is logged.
        """
        events = captureLogs(self)
        self.rpc.methods["boom"] = lambda params, caller: 1 / 0
        self.assertAnswer(call("boom"), error(INTERNAL_ERROR))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any("boom" in str(event.get("method")) for event in events))

    def test_notificationsAreNeverAnswered(self):
        """
        A request without an id gets no answer, even when it fails; it
        still runs.
        """
        for params in [["rot13", "a"], ["nope", "a"], ["explode", "a"], {"bad": 1}]:
            self.assertIsNone(self.answer({"jsonrpc": "2.0", "method": "transform", "params": params}))
        self.assertIsNone(self.answer({"jsonrpc": "2.0", "method": "nope"}))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_batch(self):
        """
        A batch is answered by an array of the answers to its requests,
        good and bad, leaving out its notifications.
        """
        batch = [
            call("transform", ["cummingsify", "A"], id=1),
            {"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "a"]},
            call("transform", ["nope", "a"], id="2"),
            {"foo": "boo"},
            call("nope", id=3),
            1,
            call("transform", {"transform": 1, "poem": "a"}, id=4),
            call("transform", ["reverse", "a\nb"], id=5),
        ]
        self.assertAnswer(
            batch,
            [
                result({"poem": "a"}, 1),
                error(ERROR_CODES["unknown-transform"], "2", "unknown-transform"),
                error(INVALID_REQUEST, None),
                error(METHOD_NOT_FOUND, 3),
                error(INVALID_REQUEST, None),
                error(INVALID_PARAMS, 4),
                result({"poem": "b\na"}, 5),
            ],
        )

    def test_emptyBatch(self):
        self.assertAnswer([], error(INVALID_REQUEST, id=None))

    def test_batchOfNotifications(self):
        notification = {"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "a"]}
        self.assertIsNone(self.answer([notification, notification]))

    def test_nestedBatch(self):
        self.assertAnswer([[call("list_transforms")]], [error(INVALID_REQUEST, None)])

    def test_batchRunsConcurrently(self):
        """
        The requests of a batch all start at once: both asynchronous
        transforms are in flight before either answers.
        """
        answer = answered(
            self.rpc,
            json.dumps([call("transform", ["echo", "a b"], id=1), call("transform", ["echo", "c"], id=2)]),
        )
        self.assertNoResult(answer)
        self.assertEqual(self.service.inFlight, 2)
        self.clock.advance(0)
        self.assertEqual(
            json.loads(self.successResultOf(answer)),
            [result({"poem": "a b … b … b"}, 1), result({"poem": "c … c … c"}, 2)],
        )

    def test_cancelAbandonsTheRequests(self):
        answer = answered(
            self.rpc,
            json.dumps([call("transform", ["stall", "a"], id=1), call("transform", ["stall", "b"], id=2)]),
        )
        self.assertEqual(self.service.inFlight, 2)
        answer.cancel()
        self.assertEqual(self.service.inFlight, 0)
        self.failureResultOf(answer, CancelledError)

    def test_answerTooBig(self):
        """
        An answer longer than the transport can carry has its results
        replaced by -32000 errors, ids and other errors kept.
        """
        rpc = JSONRPCServer(self.service, maxAnswerBytes=300)
        small = json.loads(
            self.successResultOf(answered(rpc, json.dumps(call("transform", ["rot13", "a" * 50]))))
        )
        self.assertEqual(small, result({"poem": "n" * 50}))
        batch = [call("transform", ["rot13", "a" * 90], id=i) for i in range(3)] + [call("nope", id=3)]
        answer = json.loads(self.successResultOf(answered(rpc, json.dumps(batch))))
        self.assertEqual(
            withoutMessages(answer),
            [error(ANSWER_TOO_BIG, i) for i in range(3)] + [error(METHOD_NOT_FOUND, 3)],
        )
        tight = JSONRPCServer(self.service, maxAnswerBytes=100)
        single = json.loads(
            self.successResultOf(answered(tight, json.dumps(call("transform", ["rot13", "a" * 90]))))
        )
        self.assertEqual(withoutMessages([single]), [error(ANSWER_TOO_BIG)])
        answer = json.loads(
            self.successResultOf(answered(tight, json.dumps(call("transform", ["rot13", "a" * 90]))))
        )
        self.assertIn("over the limit of 100 bytes", answer["error"]["message"])

    def test_refuse(self):
        self.assertEqual(
            json.loads(self.rpc.refuse("binary")),
            {
                "jsonrpc": "2.0",
                "error": {"code": INVALID_REQUEST, "message": "Invalid Request: binary"},
                "id": None,
            },
        )


class EncodeTests(SynchronousTestCase):
    def test_nonASCIIAsIs(self):
        self.assertEqual(encode({"poem": "perché"}), '{"poem":"perché"}'.encode())

    def test_loneSurrogateEscaped(self):
        """
        A lone surrogate (which a client may send in an id) cannot be UTF-8;
        it is escaped, so the answer can still be sent.
        """
        data = encode({"id": "\ud800é"})
        self.assertEqual(data, b'{"id":"\\ud800\\u00e9"}')
        self.assertEqual(json.loads(data), {"id": "\ud800é"})


class ClientHalfTests(SynchronousTestCase):
    def test_roundTrip(self):
        rpc = JSONRPCServer(TransformService(misbehavingCatalogue(Clock()), Clock()))
        answer = self.successResultOf(answered(rpc, encodeCall("transform", ["cummingsify", "HI"], 7)))
        self.assertEqual(decodeReply(answer, 7), {"poem": "hi"})

    def test_listingRoundTrip(self):
        """
        The result of C{list_transforms} reads back as C{(name,
        description)} pairs, in catalogue order; anything else is refused.
        """
        service = TransformService(misbehavingCatalogue(Clock()), Clock())
        answer = self.successResultOf(answered(JSONRPCServer(service), encodeCall("list_transforms", [], 1)))
        self.assertEqual(
            listedTransforms(decodeReply(answer, 1)),
            [(entry.name, entry.description) for entry in service.transforms()],
        )
        for listing in [{}, [["cummingsify", "x"]], [{"name": "a"}], [{"name": 1, "description": "d"}]]:
            self.assertRaises(ValueError, listedTransforms, listing)

    def test_serviceErrorsComeBackAsTheirClasses(self):
        for name, errorClass in ERRORS_BY_NAME.items():
            response = encode(
                {
                    "jsonrpc": "2.0",
                    "error": {"code": ERROR_CODES[name], "message": "why", "data": name},
                    "id": 1,
                }
            )
            raised = self.assertRaises(errorClass, decodeReply, response, 1)
            self.assertEqual(raised.message, "why")

    def test_standardErrors(self):
        self.assertIsInstance(serviceError({"code": INVALID_PARAMS, "message": "x"}), BadRequest)
        self.assertIsInstance(serviceError({"code": METHOD_NOT_FOUND, "message": "x"}), BadRequest)
        self.assertIsInstance(serviceError({"code": INTERNAL_ERROR, "message": "x"}), TransformFailed)
        self.assertIsInstance(serviceError("nonsense"), TransformFailed)

    def test_notAResponse(self):
        for text in ["{", "[]", '{"jsonrpc": "2.0", "result": 1, "id": 2}', '{"jsonrpc": "2.0", "id": 1}']:
            self.assertRaises(TransformFailed, decodeReply, text, 1)

    def test_errorClassesAreDistinct(self):
        self.assertEqual(
            {UnknownTransform, BadRequest, PoemTooLarge, TransformFailed, TransformTimeout, Overloaded},
            set(ERRORS_BY_NAME.values()),
        )
        self.assertEqual(set(ERROR_CODES), set(ERRORS_BY_NAME))
        self.assertEqual(len(set(ERROR_CODES.values())), len(ERROR_CODES))


def _values(value) -> int:
    """
    How many JSON values C{value} is made of, keys included.
    """
    if isinstance(value, list):
        return 1 + sum(map(_values, value))
    if isinstance(value, dict):
        return 1 + len(value) + sum(map(_values, value.values()))
    return 1


_JSON = strategies.recursive(
    strategies.none()
    | strategies.booleans()
    | strategies.integers()
    | strategies.floats(allow_nan=False, allow_infinity=False)
    | strategies.text(),
    lambda children: strategies.lists(children) | strategies.dictionaries(strategies.text(), children),
    max_leaves=50,
)


@given(strategies.integers(0, 3 * MAX_VALUES), strategies.sampled_from(["1", '"a,[{"', "[]", '{"k": 1}']))
def test_overValueLimitIsCountValuesOverTheLimit(count, item):
    """
    L{overValueLimit} says what comparing L{countValues} with
    L{MAX_VALUES} says, whatever the strings hold.
    """
    data = ("[" + ",".join([item] * count) + "]").encode()
    assert overValueLimit(data) == (countValues(data) > MAX_VALUES)


@given(_JSON, strategies.booleans())
def test_countValuesBoundsTheValues(value, asASCII):
    """
    For any JSON, however its strings are escaped, L{countValues} is never
    fewer than the values it holds (so the limit cannot be slipped past)
    and at most three times as many.
    """
    data = json.dumps(value, ensure_ascii=asASCII).encode("utf-8", "surrogatepass")
    values = _values(value)
    assert values <= countValues(data) <= 3 * values
