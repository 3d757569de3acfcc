"""
The domain of xform-gateway: transforming poems.

Nothing here knows about sockets, wire formats or running a reactor; the
protocol adapters in L{protocols} and the composition in L{gateway} build on
it.
"""

from service.catalogue import Catalogue, Transform, builtinCatalogue
from service.errors import (
    BadRequest,
    Overloaded,
    PoemTooLarge,
    TransformError,
    TransformFailed,
    TransformTimeout,
    UnknownTransform,
)
from service.slicing import Slicing
from service.transformer import Caller, Limits, TransformService

__all__ = [
    "BadRequest",
    "Caller",
    "Catalogue",
    "Limits",
    "Overloaded",
    "PoemTooLarge",
    "Slicing",
    "Transform",
    "TransformError",
    "TransformFailed",
    "TransformService",
    "TransformTimeout",
    "UnknownTransform",
    "builtinCatalogue",
]
