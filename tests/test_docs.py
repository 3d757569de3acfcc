"""
Every console example of the docs, run as written against real processes
in a network namespace of its own, its output compared with what the docs show (the rules are
in L{tests.console}); the documents run at the same time, each its blocks in order.
"""

import os
import threading

import pytest

from tests.console import REQUIRES_COMPOSE, ConsoleSession, parseDocument
from tests.helpers import ROOT

#: The documents whose console examples are tested: the README and every
#: page of docs/.
DOCUMENTS = ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md"))]

#: Each document's console blocks, shown or hidden.
BLOCKS = {document: parseDocument((ROOT / document).read_text("utf-8")) for document in DOCUMENTS}

#: The documents whose examples need the compose system.
NEED_COMPOSE = {
    document for document in DOCUMENTS if REQUIRES_COMPOSE in (ROOT / document).read_text("utf-8")
}


def composePorts() -> dict[int, int] | None:
    """
    The compose system's published ports, by the default each stands for,
    when C{make compose-test} runs the documents that need it
    (C{XFORM_COMPOSE_PORTS=10001=20001,10002=20002,8080=20080}); C{None}
    otherwise.
    """
    setting = os.environ.get("XFORM_COMPOSE_PORTS")
    if not setting:
        return None
    return {int(shown): int(actual) for shown, actual in (pair.split("=") for pair in setting.split(","))}


class DocumentRun(threading.Thread):
    """
    The console blocks of one document, run in order in a console session
    of their own, in a thread: the documents run at the same time, each in
    its own network namespace and directory, so that one document's waits
    (a server's delay, a timeout) overlap another's work.

    @ivar errors: the error of each block run so far, or C{None}.
    """

    def __init__(self, document: str, session: ConsoleSession) -> None:
        super().__init__(daemon=True, name=document)
        self.document, self.session = document, session
        self.errors: list[AssertionError | None] = []
        self._ran = threading.Condition()

    def run(self) -> None:
        for block in BLOCKS[self.document]:
            error = None
            try:
                for command in block.commands:
                    self.session.run(command, f"{self.document}:{command.line}")
            except AssertionError as failed:
                error = failed
            except Exception as failed:  # reported by the block's test, as pytest would
                error = AssertionError(f"{self.document}: {failed!r}")
                error.__cause__ = failed
            with self._ran:
                self.errors.append(error)
                self._ran.notify_all()

    def outcome(self, index: int) -> AssertionError | None:
        """
        Wait until block C{index} has run; its error, or C{None}.
        """
        with self._ran:
            self._ran.wait_for(lambda: len(self.errors) > index or not self.is_alive())
            if len(self.errors) <= index:
                return AssertionError(f"{self.document}: block {index} never ran")
            return self.errors[index]


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """
    The console blocks of every document that a selected test shows (all of
    a document's blocks, since each may need those before it), started at
    once, each document's in a session of its own; every background
    command is stopped at the end.  (make compose-test selects
    docs/deploy.md alone.)
    """
    selected = {
        item.callspec.params["document"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    started = {}
    for document in sorted(selected):
        ports = composePorts() if document in NEED_COMPOSE else None
        if document in NEED_COMPOSE and ports is None:
            continue
        session = ConsoleSession(ROOT, tmp_path_factory.mktemp("console"), ports)
        started[document] = DocumentRun(document, session)
        started[document].start()
    yield started
    for run in started.values():
        run.join()
        run.session.close()


@pytest.mark.parametrize(
    "document, index",
    [(document, index) for document, blocks in BLOCKS.items() for index in range(len(blocks))],
    ids=lambda value: str(value),
)
def test_consoleBlock(runs, document, index):
    """
    The block's commands print what the docs show.
    """
    if document not in runs:
        pytest.skip("needs the compose system: make compose-test runs it")
    error = runs[document].outcome(index)
    if error is not None:
        raise error


def test_everyDocumentIsCovered():
    """
    The README and the tutorial have console examples, so a change to the
    parser that finds none fails here rather than passing silently.
    """
    assert BLOCKS["README.md"] and BLOCKS["docs/tutorial.md"] and BLOCKS["docs/protocols.md"]
