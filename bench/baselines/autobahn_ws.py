"""
Baseline for the WebSocket benchmarks: a bare Autobahn (Twisted) WebSocket
server speaking JSON-RPC 2.0 with one method, C{transform}
(C{cummingsify} only), and nothing else: no limits, no origin check, no
batches or notifications, one request handled at a time as it arrives.

Its answers are the gateway's, byte for byte (compact JSON, the same member
order):

    --> {"jsonrpc": "2.0", "method": "transform", "params": {"transform": "cummingsify", "poem": "HELLO"}, "id": 1}
    <-- {"jsonrpc":"2.0","result":{"poem":"hello"},"id":1}

    python bench/baselines/autobahn_ws.py PORT

It answers on any path (the benchmarks use C{/ws}).  PORT 0 takes a free
port; the server prints C{listening on HOST:PORT}.
"""

import json
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


class TransformWebSocket(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        request = json.loads(payload)
        answer = {"jsonrpc": "2.0"}
        params = request.get("params")
        name, poem = (params["transform"], params["poem"]) if isinstance(params, dict) else params
        if request.get("method") != "transform":
            answer["error"] = {"code": -32601, "message": "Method not found"}
        elif name != "cummingsify":
            answer["error"] = {
                "code": 1,
                "message": f"unknown transform {name!r}",
                "data": "unknown-transform",
            }
        else:
            answer["result"] = {"poem": poem.lower()}
        answer["id"] = request.get("id")
        text = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
        self.sendMessage(text.encode("utf-8"))


if __name__ == "__main__":  # bench/web_cost.py imports the protocol
    factory = WebSocketServerFactory()
    factory.protocol = TransformWebSocket
    port = reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)
    reactor.run()
