"""The agent's membw result, parsed by the orchestrator, is the roofline's bandwidth: the bytes really moved."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from orchestrator.analysis.roofline import best_bandwidth
from orchestrator.membw import membw_rows
from tests.agent.agent_proc import run_agent


def _agent_membw() -> tuple:
    getaffinity = getattr(os, "sched_getaffinity", None)
    cpus = sorted(getaffinity(0)) if getaffinity else [0]
    run = run_agent("membw", "--cpus", ",".join(map(str, cpus)), "--size-mb", "4", "--repeats", "2")
    assert run.returncode == 0, run.stderr
    return run.stdout, json.loads(run.stdout)


def test_roofline_bandwidth_is_the_triad_traffic_of_all_threads():
    stdout, result = _agent_membw()
    rows = membw_rows("r1", "b", "big", "a log line\n" + stdout)
    roof = best_bandwidth(pd.DataFrame(rows)).set_index("component").loc["big"]
    triad = result["kernels"]["triad"]
    assert roof["bandwidth_kernel"] == "triad"
    assert roof["bandwidth_gb_s"] == pytest.approx(triad["best_gb_s"])
    # real traffic: 5 array passes per element of every thread's arrays, not STREAM's 3
    assert triad["bytes"] == 5 * 8 * result["elements_per_thread"] * result["threads"]
    assert roof["bandwidth_gb_s"] == pytest.approx(triad["bytes"] / triad["best_s"] / 1e9)
    assert roof["bandwidth_gb_s"] == pytest.approx(triad["stream_gb_s"] * 5 / 3)
