"""
The domain of xform-gateway: transforming poems.

Nothing here knows about sockets, wire formats or running a reactor; the
protocol adapters in L{protocols} and the composition in L{gateway} build on
it.

The names below are imported from their modules when first asked for, so
that importing one module of the package (L{service.errors}, which the
blocking clients use) does not import the rest, and Twisted's reactor
machinery with it.
"""

import importlib

#: Where each name the package offers is defined.
_DEFINED_IN = {
    "BadRequest": "service.errors",
    "Overloaded": "service.errors",
    "PoemTooLarge": "service.errors",
    "TransformError": "service.errors",
    "TransformFailed": "service.errors",
    "TransformTimeout": "service.errors",
    "UnknownTransform": "service.errors",
    "Catalogue": "service.catalogue",
    "Transform": "service.catalogue",
    "builtinCatalogue": "service.catalogue",
    "Slicing": "service.slicing",
    "Caller": "service.transformer",
    "Limits": "service.transformer",
    "TransformService": "service.transformer",
}

__all__ = sorted(_DEFINED_IN)


def __getattr__(name: str) -> object:
    try:
        module = _DEFINED_IN[name]
    except KeyError:
        raise AttributeError(f"module 'service' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
