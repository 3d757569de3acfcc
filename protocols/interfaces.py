"""
What every asynchronous transform client offers, whatever its protocol: the
interface that the poetry client and the upstream transforms of L{gateway}
program against.
"""

from zope.interface import Attribute, Interface


class ITransformClient(Interface):
    """
    A client of a transform server.

    Whoever makes a client disconnects it when done (C{xform get-poetry}
    once its poems are printed, an upstream when the gateway stops), so
    that no connection is left for the reactor's shutdown to cut.
    """

    timeout = Attribute("Seconds each exchange may take, connecting included.")

    def xform(transform: str, poem: str):
        """
        Transform C{poem} with the server's C{transform} (a name or a
        pipeline).

        @return: a L{Deferred} that fires with the new poem or fails with
            the errors of L{service.errors} (as far as the protocol can
            tell them apart), L{service.errors.TransformTimeout} when the
            server is too slow, or the connection error.
        """

    def disconnect():
        """
        Release the client: close whatever connection it keeps open between
        calls (only the AMP client keeps one; the others open one per call
        and have nothing to close).

        @return: a L{Deferred} that fires once that is closed.
        """


class ITransformLister(ITransformClient):
    """
    A client whose protocol can also ask for the server's transforms.
    """

    def listTransforms():
        """
        The server's transforms, in its catalogue's order.

        @return: a L{Deferred} firing with a list of C{(name, description)}.
        """
