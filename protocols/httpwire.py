"""
What the HTTP face's clients need to know of it (see L{protocols.http}),
without Twisted: the paths, the content types, the status of each service
error and how to read an error answer back into one.  The asynchronous
client of L{protocols.http} and the blocking one of L{gateway.syncclient}
share them.
"""

import json
from urllib.parse import quote

from service.errors import ERRORS_BY_NAME, BadRequest, TransformError, TransformFailed

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"

#: The HTTP status of each service error, by the error's name.
STATUS_CODES = {
    "unknown-transform": 404,
    "bad-request": 400,
    "poem-too-large": 413,
    "transform-failed": 500,
    "timeout": 504,
    "overloaded": 503,
}

#: The service error each of those statuses stands for, for the client.
_ERRORS_BY_STATUS = {status: ERRORS_BY_NAME[name] for name, status in STATUS_CODES.items()}


#: The path that lists the transforms.
TRANSFORMS_PATH = "/transforms"


def transformPath(name: str) -> str:
    """
    The path to C{POST} a poem to for the transform C{name}.
    """
    return "/transform/" + quote(name, safe="")


def errorFromResponse(status: int, body: bytes) -> TransformError:
    """
    The service error an HTTP error response stands for: the class its
    JSON body names, else one fitting the status.
    """
    try:
        document = json.loads(body)
        name, message = document["error"], str(document["message"])
    except (ValueError, TypeError, KeyError):
        name, message = None, body[:200].decode("utf-8", errors="replace")
    errorClass = ERRORS_BY_NAME.get(name)
    if errorClass is not None:
        return errorClass(message)
    errorClass = _ERRORS_BY_STATUS.get(status, BadRequest if 400 <= status < 500 else TransformFailed)
    return errorClass(f"HTTP {status}: {message}")
