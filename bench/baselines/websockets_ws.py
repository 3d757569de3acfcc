"""
Baseline for the WebSocket benchmarks: a JSON-RPC 2.0 server on the
C{websockets} library (asyncio) with one method, C{transform}
(C{cummingsify} only), one request handled at a time per connection as it
arrives, and nothing else.  Its answers are the gateway's, byte for byte
(compact JSON, the same member order).

    python bench/baselines/websockets_ws.py PORT [--uvloop]

With C{--uvloop} it runs on uvloop's event loop instead of asyncio's own.
It answers on any path (the benchmarks use C{/ws}).  PORT 0 takes a free
port; the server prints C{listening on HOST:PORT}.
"""

import asyncio
import json
import sys

from websockets.asyncio.server import serve


def answer(message):
    request = json.loads(message)
    answer = {"jsonrpc": "2.0"}
    params = request.get("params")
    name, poem = (params["transform"], params["poem"]) if isinstance(params, dict) else params
    if request.get("method") != "transform":
        answer["error"] = {"code": -32601, "message": "Method not found"}
    elif name != "cummingsify":
        answer["error"] = {"code": 1, "message": f"unknown transform {name!r}", "data": "unknown-transform"}
    else:
        answer["result"] = {"poem": poem.lower()}
    answer["id"] = request.get("id")
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))


async def transformMessages(websocket):
    async for message in websocket:
        await websocket.send(answer(message))


async def main(port):
    # As large a message as the gateway takes with its default poem limit.
    async with serve(transformMessages, "127.0.0.1", port, max_size=6 * 2**20 + 2**16) as server:
        print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()


if "--uvloop" in sys.argv:
    import uvloop

    uvloop.run(main(int(sys.argv[1])))
else:
    asyncio.run(main(int(sys.argv[1])))
