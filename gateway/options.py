"""
Command line conventions shared by the C{xform} commands.
"""

import getopt
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.python import usage

if TYPE_CHECKING:
    from twisted.internet.interfaces import IStreamServerEndpoint


class InterleavedOptions(usage.Options):
    """
    Options that may come before, between or after the positional arguments,
    as GNU tools allow (C{xform transform NAME --server URL FILE});
    C{usage.Options} alone stops at the first positional argument.  A C{--}
    still ends the options.
    """

    def parseOptions(self, options=None):
        if options is None:
            return super().parseOptions(options)
        try:
            found, positional = getopt.gnu_getopt(options, self.shortOpt, self.longOpt)
        except getopt.GetoptError as error:
            raise usage.UsageError(str(error)) from None
        ordered = []
        for name, value in found:
            if name.startswith("--"):
                ordered.append(f"{name}={value}" if f"{name[2:]}=" in self.longOpt else name)
            else:
                ordered.append(name + value)
        return super().parseOptions([*ordered, "--", *positional])


def positive(kind: type, option: str | None = None) -> Callable[[str], int | float]:
    """
    A coercer for C{usage.Options} parameters: C{text} as a C{kind} that
    must be above zero.

    @param option: the option's name, for the error message (Twisted's
        own message does not name it).
    """
    name = f"--{option}: " if option else ""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise ValueError(f"{name}{text!r} is not a positive number")
        return value

    parse.coerceDoc = "Must be a positive number."
    return parse


def serverEndpoint(reactor, description: str, option: str) -> "IStreamServerEndpoint":
    """
    The server endpoint that the endpoint string C{description}, given to
    C{--<option>}, describes.

    @raise usage.UsageError: if it is invalid.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        return serverFromString(reactor, description)
    except (ValueError, KeyError, TypeError) as error:
        raise usage.UsageError(f"--{option}: invalid endpoint {description!r}: {error}") from None


def readPoem(path: str | None) -> str:
    """
    The poem in the file at C{path}, or on standard input for C{None}.

    @raise ValueError: with a message fit for a user, if it cannot be read
        or is not UTF-8 text.
    """
    try:
        if path is None:
            return sys.stdin.buffer.read().decode("utf-8")
        with open(path, "rb") as file:
            return file.read().decode("utf-8")
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path or 'standard input'} is not UTF-8 text") from None
