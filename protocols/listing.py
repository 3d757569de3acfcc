"""
The list of transforms as the WebSocket and HTTP faces send it, as JSON:
C{[{"name": ..., "description": ...}, ...]}.  Without Twisted, for the
blocking client as well.
"""

from collections.abc import Iterable


def transformsListing(entries: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """
    The C{(name, description)} entries of the service's listing as the
    WebSocket and HTTP faces (and AMP's C{ListTransforms}) send them:
    C{[{"name": ..., "description": ...}, ...]}.
    """
    return [{"name": name, "description": description} for name, description in entries]


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
