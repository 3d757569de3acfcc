"""
The fuzzing targets (L{tests.fuzz.targets}) on their seeds and on every
input that ever made one fail (C{tests/fuzz/regressions/}), without
atheris, the known issues failing too: what C{make fuzz} found stays
found.  They run in a process of their own (C{python -m tests.fuzz.run
--replay}): the web face sends the page's files with Twisted's global
cooperator, whose work must not outlive them into other tests.
"""

import json
import subprocess
import sys

import pytest

from tests.fuzz.run import TARGETS, inputs
from tests.helpers import ROOT

#: The inputs kept that still fail, with why: each a bug not fixed yet.
STILL_FAILING = {
    "http/regressions/head-on-a-post-route": "found by make fuzz: HEAD of /transform/<name> answers 500 with "
    "a critical traceback (Resource.render_HEAD calls a render_GET that POST-only routes lack)",
}


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


def _case(target, kind, path):
    name = f"{target}/{kind}/{path.name}"
    reason = STILL_FAILING.get(name)
    return pytest.param(
        name, marks=[pytest.mark.xfail(strict=True, reason=reason)] if reason else [], id=name
    )


@pytest.mark.parametrize("name", [_case(*each) for each in inputs()])
def test_input(outcomes, name):
    """
    The target takes the input without failing, even on an issue the
    fuzzer is told to pass over.
    """
    assert outcomes[name] is None, outcomes[name]


def test_everyTargetHasSeeds():
    assert {target for target, kind, path in inputs() if kind == "seeds"} == set(TARGETS)
