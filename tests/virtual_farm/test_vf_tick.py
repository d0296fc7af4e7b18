"""A farm's simulators share one interpreter: past 16 boards each ticks less often, so that together they keep
up (at 64 boards, 20 ms ticks fell seconds behind and INA231 sensors went unrefreshed through idle windows)."""

from __future__ import annotations

import pytest

from orchestrator.virtual.farm import FARM_TICKS_PER_S, TICK_S, BoardSpec, VirtualFarm, default_tick_s


@pytest.mark.parametrize("n, tick_s", [(1, 0.02), (8, 0.02), (16, 0.02), (32, 0.04), (64, 0.08), (200, 0.25)])
def test_the_tick_grows_with_the_farm_past_16_boards(n, tick_s):
    assert default_tick_s(n) == pytest.approx(tick_s)
    assert n / default_tick_s(n) <= FARM_TICKS_PER_S * (1 + 1e-9)


def test_a_farm_takes_its_tick_from_its_size_unless_given(tmp_path):
    specs = [BoardSpec(f"xu3-{i}", "odroid_xu3") for i in range(64)]
    assert VirtualFarm(tmp_path, specs[:4]).tick_s == TICK_S
    assert VirtualFarm(tmp_path, specs).tick_s == pytest.approx(0.08)
    assert VirtualFarm(tmp_path, specs, tick_s=0.01).tick_s == 0.01
