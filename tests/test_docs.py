"""
Every console example of the docs, run as written against real processes
in a network namespace of its own, its output compared with what the docs show (the rules are
in L{tests.console}).
"""

import os

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


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """
    One console session per document, shared by its blocks, which run in
    order; every background command is stopped at the end.
    """
    opened: dict[str, ConsoleSession] = {}

    def session(document: str) -> ConsoleSession:
        if document not in opened:
            ports = composePorts() if document in NEED_COMPOSE else None
            opened[document] = ConsoleSession(ROOT, tmp_path_factory.mktemp("console"), ports)
        return opened[document]

    yield session
    for session in opened.values():
        session.close()


@pytest.mark.parametrize(
    "document, index",
    [(document, index) for document, blocks in BLOCKS.items() for index in range(len(blocks))],
    ids=lambda value: str(value),
)
def test_consoleBlock(sessions, document, index):
    """
    The block's commands print what the docs show.
    """
    if document in NEED_COMPOSE and composePorts() is None:
        pytest.skip("needs the compose system: make compose-test runs it")
    session = sessions(document)
    for command in BLOCKS[document][index].commands:
        session.run(command, f"{document}:{command.line}")


def test_everyDocumentIsCovered():
    """
    The README and the tutorial have console examples, so a change to the
    parser that finds none fails here rather than passing silently.
    """
    assert BLOCKS["README.md"] and BLOCKS["docs/tutorial.md"] and BLOCKS["docs/protocols.md"]
