"""
Fixtures shared by the process tests of several modules.
"""

import pytest

from gateway.server import LISTENERS
from tests.helpers import GatewayProcess


@pytest.fixture(scope="module")
def fullGateway():
    """
    A real gateway with every listener on, on free ports, shared by the
    tests of a module: reach it over any scheme with C{fullGateway.url}.
    """
    with GatewayProcess(listeners=tuple(LISTENERS)) as process:
        yield process
