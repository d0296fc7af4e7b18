"""The memory bandwidth microbenchmark: STREAM byte accounting, the kernels' results, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from device_agent.membw import kernels, run_membw, stream_bytes
from tests.agent.agent_proc import run_agent


def test_bytes_are_counted_as_stream_does():
    n = 1000
    assert stream_bytes("copy", n) == 16000  # read a, write c
    assert stream_bytes("scale", n) == 16000  # read c, write b
    assert stream_bytes("add", n) == 24000  # read a, b, write c
    assert stream_bytes("triad", n) == 24000  # read b, c, write a


def test_kernels_compute_what_stream_computes():
    a, b, c = np.full(5, 1.0), np.full(5, 2.0), np.zeros(5)
    k = kernels(a, b, c)
    k["copy"]()
    assert (c == 1.0).all()
    k["scale"]()
    assert (b == 3.0).all()
    k["add"]()
    assert (c == 4.0).all()
    k["triad"]()
    assert (a == 15.0).all()  # b + 3 * c


def test_bandwidth_is_bytes_over_the_best_time():
    ticks = iter(range(0, 10 ** 9, 1000))  # every run "takes" 1000 ns
    result = run_membw(size_mb=1, repeats=2, clock_ns=lambda: next(ticks))
    n = result["array_elements"]
    assert n == 1024 * 1024 // 8
    for name, k in result["kernels"].items():
        assert k["bytes"] == stream_bytes(name, n)
        assert k["best_gb_s"] == pytest.approx(k["bytes"] / 1000.0)


def test_cli_runs_pinned_and_prints_json():
    run = run_agent("membw", "--cpus", "0", "--size-mb", "4", "--repeats", "2")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["cpus_effective"] == [0] and out["repeats"] == 2
    assert set(out["kernels"]) == {"copy", "scale", "add", "triad"}
    assert all(k["best_gb_s"] > 0 for k in out["kernels"].values())


def test_cli_rejects_a_cpu_that_does_not_exist():
    run = run_agent("membw", "--cpus", "4096")
    assert run.returncode == 2
    assert json.loads(run.stdout)["message"].startswith("--cpus: CPU id(s) [4096] not available")
