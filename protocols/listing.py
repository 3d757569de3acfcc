"""
The list of transforms as the WebSocket and HTTP faces send it, as JSON:
C{[{"name": ..., "description": ...}, ...]}.  Without Twisted, for the
blocking client as well.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.transformer import TransformService


def transformsListing(service: "TransformService") -> list[dict[str, str]]:
    """
    The service's transforms as the WebSocket and HTTP faces list them, in
    catalogue order: C{[{"name": ..., "description": ...}, ...]}.
    """
    return [{"name": entry.name, "description": entry.description} for entry in service.transforms()]


def listedTransforms(listing: object) -> list[tuple[str, str]]:
    """
    The C{(name, description)} of each transform of a listing made by
    L{transformsListing} and decoded from JSON.

    @raise ValueError: if C{listing} is not such a list.
    """
    if not isinstance(listing, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("description"), str)
        for entry in listing
    ):
        raise ValueError(f"not a list of transforms: {str(listing)[:200]!r}")
    return [(entry["name"], entry["description"]) for entry in listing]
