"""
The gateway each module of the hostile suite attacks, with the polite
client served meanwhile: one per module, started with the module's
C{GATEWAY} options (by default a 1 s idle timeout and a 2 s deadline, so
that what the attacks hold is let go quickly).
"""

import pytest

from tests.hostile.support import Target

DEFAULT = ("--idle-timeout", "1", "--deadline", "2")


@pytest.fixture(scope="module")
def target(request):
    target = Target(*getattr(request.module, "GATEWAY", DEFAULT)).start()
    yield target
    target.stop()
