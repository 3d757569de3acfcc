"""
The catalogue: the whitelist of transforms a client may call, and the parser
of transform names into pipelines.

A client only ever names a transform; the catalogue looks that name up in a
dictionary of entries registered in code.  No attribute lookup is ever done
on client input, so C{__class__} or C{__init__} are simply unknown names.

A name may chain several transforms with C{|}: C{cummingsify|reverse} applies
C{cummingsify}, then C{reverse}.

A name prefix may be delegated to a resolver: with C{remote} delegated,
C{remote:cummingsify} is whatever the resolver makes of C{cummingsify} (the
gateway resolves it to a call to another transform server).  Only the
prefixes delegated in code are ever resolved, and the rest of the name must
still be a usable name.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from service import transforms
from service.errors import BadRequest, UnknownTransform

#: The separator of pipeline steps in a transform name.
PIPE = "|"

#: Separates a delegated prefix from the rest of a transform name.
PREFIX_SEPARATOR = ":"

#: What a delegated prefix may be made of.
_PREFIX = re.compile(r"[A-Za-z0-9_-]+")

#: The longest transform name (pipeline included) a client may send, in
#: characters.
MAX_NAME_LENGTH = 256

#: The most steps one pipeline may have.
MAX_PIPELINE_STEPS = 16


@dataclass(frozen=True)
class Transform:
    """
    One entry of the catalogue.

    @ivar name: the name clients call it by.
    @ivar description: one line saying what it does to a poem.
    @ivar function: takes the poem and returns the new poem, or a L{Deferred}
        firing with it.
    @ivar offloadable: C{True} when C{function} is pure, thread-safe,
        synchronous and slow enough per byte that the service should run it
        in a worker thread for a large poem, to keep the reactor free for
        other clients.  Transforms that use the reactor must say C{False};
        so do those that are cheap even at the largest poem (a few
        milliseconds per MiB, such as C{str.lower}), for which handing the
        poem to a thread and back costs more than it saves.
    """

    name: str
    description: str
    function: Callable[[str], "str | Deferred[str]"]
    offloadable: bool = True


#: Makes the catalogue entry for the rest of a delegated name.
Resolver = Callable[[str], Transform]


def _quoted(name: str) -> str:
    """
    Quote a client-supplied name for a message: escaped, and cut short.
    """
    return repr(name[:64] + ("…" if len(name) > 64 else ""))


class Catalogue:
    """
    The named transforms a service offers, in the order they were added.
    """

    def __init__(self, entries: Iterable[Transform] = ()) -> None:
        self._entries: dict[str, Transform] = {}
        self._resolvers: dict[str, Resolver] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: Transform) -> None:
        """
        Register C{entry}.

        @raise ValueError: if the name is taken or could not be called
            (empty, or containing the pipeline separator, the prefix
            separator or white space).
        """
        if PREFIX_SEPARATOR in entry.name or not _usableName(entry.name):
            raise ValueError(f"unusable transform name {entry.name!r}")
        if entry.name in self._entries:
            raise ValueError(f"transform {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def delegate(self, prefix: str, resolver: Resolver) -> None:
        """
        Resolve every name C{<prefix>:<rest>} to C{resolver(rest)}.  The rest
        may hold further C{:} (an upstream may delegate in turn) but must
        otherwise be a usable name; the resolver is not asked about any
        other.  Delegated names are not listed by iterating the catalogue.

        @raise ValueError: if the prefix is delegated already, or is not
            made of ASCII letters, digits, C{-} and C{_}.
        """
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"unusable prefix {prefix!r}: use letters, digits, '-' and '_'")
        if prefix in self._resolvers:
            raise ValueError(f"prefix {prefix!r} is already delegated")
        self._resolvers[prefix] = resolver

    def __iter__(self) -> Iterator[Transform]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, name: str) -> Transform:
        """
        The entry called exactly C{name}.

        @raise UnknownTransform: if there is none, and C{name} is not a
            usable name under a delegated prefix.
        """
        entry = self._entries.get(name)
        if entry is not None:
            return entry
        prefix, separator, rest = name.partition(PREFIX_SEPARATOR)
        resolver = self._resolvers.get(prefix) if separator else None
        if resolver is not None and _usableName(rest):
            return resolver(rest)
        raise UnknownTransform(f"unknown transform {_quoted(name)}")

    def pipeline(self, name: str) -> tuple[Transform, ...]:
        """
        Parse a transform name into the entries it chains, left to right.
        Spaces around C{|} are ignored.  Every step is checked before
        anything runs.

        @raise BadRequest: for an empty name, an empty step, a name over
            L{MAX_NAME_LENGTH} characters or more than L{MAX_PIPELINE_STEPS}
            steps.
        @raise UnknownTransform: for a step that is not in the catalogue.
        """
        if not name:
            raise BadRequest("the transform name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"the transform name is longer than {MAX_NAME_LENGTH} characters")
        steps = [step.strip() for step in name.split(PIPE)]
        if len(steps) > MAX_PIPELINE_STEPS:
            raise BadRequest(f"a pipeline has at most {MAX_PIPELINE_STEPS} steps")
        if not all(steps):
            raise BadRequest(f"empty step in pipeline {_quoted(name)}")
        return tuple(self.lookup(step) for step in steps)


def _usableName(name: str) -> bool:
    """
    Whether C{name} could be called: not empty, without the pipeline
    separator or white space.
    """
    return bool(name) and PIPE not in name and name == "".join(name.split())


def builtinCatalogue(clock: IReactorTime) -> Catalogue:
    """
    The transforms every gateway offers.

    @param clock: schedules the asynchronous transforms.
    """
    # cummingsify, rot13, reverse and mirror run in C, in 2 to 25 ms on a
    # 1 MiB poem: cheaper in the reactor thread than through a worker.  The
    # regular-expression transforms take about half a second on 1 MiB.
    cheap = {"offloadable": False}
    return Catalogue(
        [
            Transform(
                "cummingsify",
                "lowercase everything, as e. e. cummings might",
                transforms.cummingsify,
                **cheap,
            ),
            Transform("reverse", "the same lines, last line first", transforms.reverse, **cheap),
            Transform("mirror", "every line written backwards, as in a mirror", transforms.mirror, **cheap),
            Transform("titlecase", "Every Word Starts With A Capital", transforms.titlecase),
            Transform("piglatin", "every word in pig latin: science becomes iencescay", transforms.piglatin),
            Transform(
                "shuffle", "the words of each line shuffled, the same way every time", transforms.shuffle
            ),
            Transform(
                "rot13",
                "every letter rotated thirteen places; twice gives the poem back",
                transforms.rot13,
                **cheap,
            ),
            Transform(
                "echo",
                "each line echoed by its last word (asynchronous, a few lines per turn)",
                transforms.echo(clock),
                offloadable=False,
            ),
        ]
    )
