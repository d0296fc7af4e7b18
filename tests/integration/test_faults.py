"""A short fault schedule of benchmarks/faults.py on two virtual boards: every fault is injected during the
sweep, detected and named in the journal, and no job is lost or measured twice."""

from __future__ import annotations

import pytest

from benchmarks.faults import classified, format_table, judge, run_schedule
from tests.virtual_farm.helpers import require_netns

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def test_a_short_fault_schedule_loses_and_duplicates_no_job(tmp_path):
    require_netns()
    res = run_schedule(tmp_path, 2, ["agent_kill", "meter_disconnect", "controller_kill"], 4, seed=3,
                       window_s=0.5, timeout_s=240, log=lambda text: None)
    rows = judge(res["faults"], res["run_dir"])
    table = format_table(rows)
    faults, total = rows[:-1], rows[-1]
    assert [r["fault"] for r in faults] == ["agent_kill", "meter_disconnect", "controller_kill"], table
    assert all(r["injected"] and r["detected"] for r in faults), table
    assert all(classified(r) for r in faults), table
    assert {r["fault"]: r["classified"] for r in faults[:2]} == {"agent_kill": "AgentDied",
                                                                "meter_disconnect": "MeterError"}, table
    assert total["lost"] == 0 and total["duplicated"] == 0, table
    assert res["rc"] == 0, res["log"].read_text()[-3000:]
