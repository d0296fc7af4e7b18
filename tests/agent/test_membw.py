"""The memory bandwidth microbenchmark: bytes really moved, one pinned thread per CPU, the CLI."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from device_agent.membw import ARRAY_PASSES, KERNELS, kernels, moved_bytes, run_membw, stream_bytes
from tests.agent.agent_proc import run_agent

CAN_PIN = hasattr(os, "sched_setaffinity")
needs_pinning = pytest.mark.skipif(not CAN_PIN, reason="no sched_setaffinity on this platform")


class CountingNumpy:
    """Stands in for numpy in the kernels: counts each element read (array input) and written (output)."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0

    def _inputs(self, *args) -> None:
        self.reads += sum(x.size for x in args if isinstance(x, np.ndarray))

    def copyto(self, dst, src):
        self._inputs(src)
        self.writes += dst.size
        np.copyto(dst, src)

    def multiply(self, x, y, out):
        self._inputs(x, y)
        self.writes += out.size
        np.multiply(x, y, out=out)

    def add(self, x, y, out):
        self._inputs(x, y)
        self.writes += out.size
        np.add(x, y, out=out)


def test_bytes_are_counted_as_stream_does():
    n = 1000
    assert stream_bytes("copy", n) == 16000  # read a, write c
    assert stream_bytes("scale", n) == 16000  # read c, write b
    assert stream_bytes("add", n) == 24000  # read a, b, write c
    assert stream_bytes("triad", n) == 24000  # read b, c, write a


def test_bytes_moved_by_the_numpy_kernels():
    n = 1000
    assert moved_bytes("copy", n) == 16000  # read a, write c
    assert moved_bytes("scale", n) == 16000  # read c, write b
    assert moved_bytes("add", n) == 24000  # read a, b, write c
    assert moved_bytes("triad", n) == 40000  # read c, write a; read a, b, write a


@pytest.mark.parametrize("name", KERNELS)
def test_moved_bytes_are_the_element_reads_and_writes_of_the_implementation(name):
    n = 7
    xp = CountingNumpy()
    kernels(np.full(n, 1.0), np.full(n, 2.0), np.zeros(n), xp=xp)[name]()
    assert xp.reads + xp.writes == ARRAY_PASSES[name] * n
    assert (xp.reads + xp.writes) * 8 == moved_bytes(name, n)


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


def test_bandwidth_is_bytes_moved_over_the_best_time():
    ticks = iter(range(0, 10 ** 9, 1000))  # every run "takes" 1000 ns
    result = run_membw(size_mb=1, repeats=2, clock_ns=lambda: next(ticks))
    n = result["array_elements"]
    assert n == 1024 * 1024 // 8
    assert result["threads"] == 1 and result["cpus"] is None
    for name, k in result["kernels"].items():
        assert k["bytes"] == moved_bytes(name, n)
        assert k["best_gb_s"] == pytest.approx(k["bytes"] / 1000.0)
        assert k["stream_bytes"] == stream_bytes(name, n)
        assert k["stream_gb_s"] == pytest.approx(k["stream_bytes"] / 1000.0)
    triad = result["kernels"]["triad"]
    assert triad["best_gb_s"] == pytest.approx(triad["stream_gb_s"] * 5 / 3)


def test_without_cpus_one_unpinned_thread():
    seen = []
    result = run_membw(size_mb=1, repeats=1, on_thread=lambda i, cpu: seen.append(
        (i, cpu, threading.get_ident(), sorted(os.sched_getaffinity(0)) if CAN_PIN else None)))
    assert len(seen) == 1 and seen[0][:2] == (0, None)
    if CAN_PIN:
        assert seen[0][3] == sorted(os.sched_getaffinity(0))  # the process's mask, untouched
    assert result["threads"] == 1 and result["thread_affinity"] == [None]


@needs_pinning
def test_one_pinned_thread_per_cpu_with_arrays_split_between_them():
    cpus = sorted(os.sched_getaffinity(0))
    seen = {}
    lock = threading.Lock()

    def record(index, cpu):
        with lock:
            seen[index] = (cpu, threading.get_ident(), sorted(os.sched_getaffinity(0)))

    ticks = iter(range(0, 10 ** 9, 1000))
    clock_lock = threading.Lock()

    def clock():
        with clock_lock:
            return next(ticks)

    result = run_membw(size_mb=1, repeats=3, clock_ns=clock, cpus=cpus, on_thread=record)
    assert len(seen) == len(cpus) == result["threads"]
    assert len({ident for _, ident, _ in seen.values()}) == len(cpus)  # distinct threads
    assert [seen[i][0] for i in range(len(cpus))] == cpus
    assert all(mask == [cpu] for cpu, _, mask in seen.values())  # each pinned to its own CPU only
    assert result["cpus"] == cpus and result["thread_affinity"] == [[c] for c in cpus]
    per_thread = 1024 * 1024 // 8 // len(cpus)
    assert result["elements_per_thread"] == per_thread
    assert result["array_elements"] == per_thread * len(cpus)
    for name, k in result["kernels"].items():
        assert k["bytes"] == moved_bytes(name, per_thread) * len(cpus)  # summed over the threads
        # one start and one end per run, whatever the number of threads: 1 tick apart
        assert k["best_gb_s"] == pytest.approx(k["bytes"] / 1000.0)


@needs_pinning
def test_a_failing_thread_stops_the_others_and_its_error_is_raised():
    cpus = sorted(os.sched_getaffinity(0))

    def fail_last(index, cpu):
        if index == len(cpus) - 1:
            raise RuntimeError("thread %d cannot start" % index)

    with pytest.raises(RuntimeError, match="cannot start"):
        run_membw(size_mb=1, repeats=1, cpus=cpus, on_thread=fail_last)


def test_cli_runs_pinned_and_prints_json():
    run = run_agent("membw", "--cpus", "0", "--size-mb", "4", "--repeats", "2")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["cpus_effective"] == [0] and out["repeats"] == 2
    assert out["threads"] == 1 and out["thread_affinity"] == [[0]]
    assert set(out["kernels"]) == {"copy", "scale", "add", "triad"}
    assert all(k["best_gb_s"] > 0 for k in out["kernels"].values())


@needs_pinning
def test_cli_runs_one_thread_per_cpu():
    cpus = sorted(os.sched_getaffinity(0))
    run = run_agent("membw", "--cpus", ",".join(map(str, cpus)), "--size-mb", "4", "--repeats", "2")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["cpus_effective"] == cpus and out["cpus"] == cpus and out["threads"] == len(cpus)
    assert out["thread_affinity"] == [[c] for c in cpus]
    n = out["elements_per_thread"]
    assert out["kernels"]["triad"]["bytes"] == 5 * 8 * n * len(cpus)


def test_cli_rejects_a_cpu_that_does_not_exist():
    run = run_agent("membw", "--cpus", "4096")
    assert run.returncode == 2
    assert json.loads(run.stdout)["message"].startswith("--cpus: CPU id(s) [4096] not available")
