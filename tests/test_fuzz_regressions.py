"""
The fuzzing targets (L{tests.fuzz.targets}) on their seeds and on every
input that ever made one fail (C{tests/fuzz/regressions/}), without
atheris: what C{make fuzz} found stays found.  They run in a process of
their own (C{python -m tests.fuzz.run --replay}): the web face sends the page's files with Twisted's global
cooperator, whose work must not outlive them into other tests.
"""

import json
import subprocess
import sys

import pytest

from tests.fuzz.run import TARGETS, inputs
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def outcomes() -> dict:
    replayed = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.run", "--replay"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    return json.loads(replayed.stdout)


@pytest.mark.parametrize("name", [f"{target}/{kind}/{path.name}" for target, kind, path in inputs()])
def test_input(outcomes, name):
    """
    The target takes the input without failing.
    """
    assert outcomes[name] is None, outcomes[name]


def test_everyTargetHasSeeds():
    assert {target for target, kind, path in inputs() if kind == "seeds"} == set(TARGETS)
