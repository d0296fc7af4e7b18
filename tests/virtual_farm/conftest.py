"""Fixtures for the virtual-farm tests: a 3-board farm.

Everything that creates namespaces is marked ``netns`` and ``slow`` and is
skipped without root or tools. Farms are torn down in ``finally`` blocks, also
when a test fails; ``teardown(state_dir)`` runs as a second line of defence.
"""

from __future__ import annotations

import pytest

from orchestrator.virtual.farm import BoardSpec
from tests.virtual_farm.helpers import running_farm


@pytest.fixture(scope="module")
def farm3(tmp_path_factory):
    """xu3-1, xu3-2 (vendor INA231) and hikey-1, up and accepting SSH."""
    boards = [BoardSpec("xu3-1", "odroid_xu3"), BoardSpec("xu3-2", "odroid_xu3"), BoardSpec("hikey-1", "hikey970")]
    with running_farm(tmp_path_factory.mktemp("farm3"), boards, max_lifetime_s=300) as farm:
        yield farm
