"""
Baseline for the AMP benchmarks: a bare Twisted AMP server with one
responder, C{Transform} (C{cummingsify} only), and nothing else: no limits,
deadlines, flow control, logging or error mapping beyond one code.

It speaks the gateway's wire contract (docs/protocols.md), so the same
client drives both: arguments C{transform} and C{poem}, answer C{poem}, and
a poem over 65,535 bytes split across C{poem}, C{poem.2}, ... both ways.

    python bench/baselines/twisted_amp.py PORT

PORT 0 takes a free port; the server prints C{listening on HOST:PORT}.
"""

import sys

from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.protocols import amp


class SplitText(amp.Argument):
    """
    UTF-8 text of any length: pieces of at most 65,535 bytes under the keys
    C{name}, C{name.2}, C{name.3}, ..., never cut inside a UTF-8 sequence.
    """

    def fromBox(self, name, strings, objects, proto):
        pieces, number = [strings[name]], 2
        while (piece := strings.get(b"%s.%d" % (name, number))) is not None:
            pieces.append(piece)
            number += 1
        objects[name.decode("ascii")] = b"".join(pieces).decode("utf-8")

    def toBox(self, name, strings, objects, proto):
        value = objects[name.decode("ascii")].encode("utf-8")
        key, start, number = name, 0, 2
        while len(value) - start > amp.MAX_VALUE_LENGTH:
            end = start + amp.MAX_VALUE_LENGTH
            while value[end] & 0xC0 == 0x80:  # a byte 10xxxxxx continues a character
                end -= 1
            strings[key] = value[start:end]
            key, start, number = b"%s.%d" % (name, number), end, number + 1
        strings[key] = value[start:]


class UnknownTransform(Exception):
    pass


class Transform(amp.Command):
    arguments = [(b"transform", amp.Unicode()), (b"poem", SplitText())]
    response = [(b"poem", SplitText())]
    errors = {UnknownTransform: b"UNKNOWN_TRANSFORM"}


class TransformAMP(amp.AMP):
    @Transform.responder
    def transform(self, transform, poem):
        if transform != "cummingsify":
            raise UnknownTransform(f"unknown transform {transform!r}")
        return {"poem": poem.lower()}


if __name__ == "__main__":  # bench/inprocess.py imports the protocol
    factory = Factory.forProtocol(TransformAMP)
    factory.noisy = False
    port = reactor.listenTCP(int(sys.argv[1]), factory, interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)
    reactor.run()
