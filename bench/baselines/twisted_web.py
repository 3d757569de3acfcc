"""
Baseline for the HTTP benchmark: a bare C{twisted.web} server with one
resource, C{POST /transform/cummingsify}, answering the lowercased body as
C{text/plain; charset=utf-8}, and nothing else: no limits, security
headers, error bodies or access log.

    python bench/baselines/twisted_web.py PORT

PORT 0 takes a free port; the server prints C{listening on HOST:PORT}.
"""

import sys

from twisted.internet import reactor
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Site


class Cummingsify(Resource):
    isLeaf = True

    def render_POST(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return request.content.read().decode("utf-8").lower().encode("utf-8")


class Transforms(Resource):
    def getChild(self, name, request):
        return Cummingsify() if name == b"cummingsify" else NoResource()


def site() -> Site:
    root = Resource()
    root.putChild(b"transform", Transforms())
    return Site(root)


if __name__ == "__main__":  # bench/web_cost.py imports the site
    port = reactor.listenTCP(int(sys.argv[1]), site(), interface="127.0.0.1")
    print(f"listening on 127.0.0.1:{port.getHost().port}", flush=True)
    reactor.run()
