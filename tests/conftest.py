"""
Fixtures shared by the command line and process tests of several modules.
"""

import gc
import io
import sys

import pytest

from gateway.cli import main
from gateway.server import LISTENERS
from tests.helpers import GatewayProcess


@pytest.fixture
def xformHere(capsysbinary, monkeypatch):
    """
    Run the C{xform} command in this process, through L{gateway.cli.main}:
    C{xformHere(*arguments, input=b"")} returns its exit status, its output
    (bytes) and its errors (text), as L{tests.helpers.xform} does for a
    process.  For the commands that end before the reactor would run: the
    blocking clients, and the usage errors of every command.
    """

    def run(*arguments: str, input: bytes = b"") -> tuple[int, bytes, str]:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(input)))
        with pytest.raises(SystemExit) as exited:
            main(list(arguments))
        out, err = capsysbinary.readouterr()
        return exited.value.code or 0, out, err.decode()

    return run


@pytest.fixture(scope="session")
def fullGateway():
    """
    A real gateway with every listener on, on free ports, shared by every
    test of the run that needs one and does not stop it: reach it over any
    scheme with C{fullGateway.url}.
    """
    with GatewayProcess(listeners=tuple(LISTENERS)) as process:
        yield process


def pytest_collection_finish(session):
    """
    Keep the cyclic collector from walking again, at every full
    collection, what the collection imported and built, which lives until
    the end of the run (as C{xform} does for what it starts with).
    """
    gc.freeze()
