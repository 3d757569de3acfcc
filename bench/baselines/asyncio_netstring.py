"""
Baseline for the netstring benchmarks: what one would write on asyncio
alone -- an C{asyncio.Protocol} that reads one netstring
C{<length>:cummingsify.<poem>,}, answers the lowercased poem as a
netstring and closes -- with no limits, deadlines or logging.

    python bench/baselines/asyncio_netstring.py PORT [--uvloop]

With C{--uvloop} it runs on uvloop's event loop instead of asyncio's own.
PORT 0 takes a free port; the server prints C{listening on HOST:PORT}.
"""

import asyncio
import sys


class NetstringTransform(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.received = bytearray()

    def data_received(self, data):
        self.received += data
        colon = self.received.find(b":")
        if colon < 0:
            return
        end = colon + 1 + int(self.received[:colon])
        if len(self.received) <= end:
            return
        name, _, poem = bytes(self.received[colon + 1 : end]).partition(b".")
        if self.received[end] == ord(",") and name == b"cummingsify":
            answer = poem.decode("utf-8").lower().encode("utf-8")
            self.transport.write(b"%d:%s," % (len(answer), answer))
        self.transport.close()


async def serve(port):
    server = await asyncio.get_running_loop().create_server(NetstringTransform, "127.0.0.1", port)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if "--uvloop" in sys.argv:
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
else:
    asyncio.run(serve(int(sys.argv[1])))
