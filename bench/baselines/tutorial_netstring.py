"""
Baseline for the netstring benchmarks: the Twisted introduction's Part 12
transformation server as the tutorial wrote it -- a L{NetstringReceiver}
that lowercases and closes -- with no limits, deadlines, logging or
offloading.  It shows what the gateway's robustness costs.

    python bench/baselines/tutorial_netstring.py PORT

PORT 0 takes a free port; the server prints C{listening on HOST:PORT}.
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import NetstringReceiver


class TutorialTransformProtocol(NetstringReceiver):
    MAX_LENGTH = 64 * 1024 * 1024

    def stringReceived(self, request):
        name, _, poem = request.partition(b".")
        if name == b"cummingsify":
            self.sendString(poem.decode("utf-8").lower().encode("utf-8"))
        self.transport.loseConnection()


if __name__ == "__main__":  # bench/inprocess.py imports the protocol
    factory = ServerFactory.forProtocol(TutorialTransformProtocol)
    factory.noisy = False
    port = reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)
    reactor.run()
