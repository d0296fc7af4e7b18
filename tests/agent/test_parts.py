"""Unit tests of the small parts: events, trace, stats, runtime helpers."""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np
import pytest

from device_agent import runtime as runtime_mod
from device_agent.errors import ModelError, RuntimeMissing
from device_agent.events import EventWriter
from device_agent.runtime import import_runtime, make_input
from device_agent.stats import latency_ms, throughput_ips
from device_agent.trace import HEADER, write_trace


def test_event_is_one_flushed_json_line_with_the_common_fields():
    out = io.StringIO()
    EventWriter(out, job_id="j/1").emit("progress", phase="measure", count=3, elapsed_s=0.5)
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    event = json.loads(text)
    assert list(event)[:5] == ["v", "event", "job_id", "t_mono_ns", "t_wall_ns"]
    assert event["v"] == 1 and event["event"] == "progress" and event["job_id"] == "j/1"
    assert isinstance(event["t_mono_ns"], int) and isinstance(event["t_wall_ns"], int)
    assert event["count"] == 3


def test_event_fields_cannot_override_the_common_ones():
    with pytest.raises(ValueError, match="reserved"):
        EventWriter(io.StringIO()).emit("summary", job_id="other")


def test_trace_is_written_atomically_with_its_sha256(tmp_path):
    starts = [100, 250, 400]
    ends = [200, 350, 500]
    trace = write_trace(str(tmp_path), starts, ends)
    data = (tmp_path / "trace.csv").read_bytes()
    assert data.decode() == HEADER + "0,100,200\n1,250,350\n2,400,500\n"
    assert trace.sha256 == hashlib.sha256(data).hexdigest()
    assert trace.rows == 3 and trace.path == str(tmp_path / "trace.csv")
    assert os.listdir(str(tmp_path)) == ["trace.csv"]  # no temporary left behind


def test_trace_with_many_rows(tmp_path):
    n = 10000
    starts = list(range(0, 2 * n, 2))
    trace = write_trace(str(tmp_path), starts, [s + 1 for s in starts])
    lines = (tmp_path / "trace.csv").read_text().splitlines()
    assert len(lines) == n + 1 and trace.rows == n
    assert lines[-1] == "%d,%d,%d" % (n - 1, starts[-1], starts[-1] + 1)


def test_latency_percentiles_in_ms():
    starts = [0] * 100
    ends = [(i + 1) * 1000000 for i in range(100)]  # 1..100 ms
    lat = latency_ms(starts, ends)
    assert lat["min"] == 1.0 and lat["max"] == 100.0
    assert lat["mean"] == pytest.approx(50.5)
    assert lat["p50"] == pytest.approx(50.5)
    assert lat["p90"] == pytest.approx(90.1)
    assert lat["p99"] == pytest.approx(99.01)
    assert all(isinstance(v, float) for v in lat.values())


@pytest.mark.parametrize("n", [1, 2, 3, 10, 101, 1000, 20000])
def test_latency_without_numpy_is_numpys_to_the_bit(monkeypatch, n):
    """A board of simulated components summarises without numpy (it never imports it); the figures are the
    ones numpy gives: percentiles, min and max equal, the mean within rounding."""
    import random
    import sys

    import numpy as np

    rng = random.Random(n)
    starts = [rng.randrange(10 ** 12) for _ in range(n)]
    ends = [s + rng.choice([rng.randrange(10 ** 4, 10 ** 8), 1234567]) for s in starts]  # ties too
    with_numpy = latency_ms(starts, ends)
    durations = (np.asarray(ends, dtype=np.int64) - np.asarray(starts, dtype=np.int64)) / 1e6
    assert [with_numpy[k] for k in ("p50", "p90", "p99")] == list(np.percentile(durations, (50, 90, 99)))
    monkeypatch.setitem(sys.modules, "numpy", None)  # as in an agent that never imported it
    plain = latency_ms(starts, ends)
    assert {k: v for k, v in plain.items() if k != "mean"} == {k: v for k, v in with_numpy.items() if k != "mean"}
    assert plain["mean"] == pytest.approx(with_numpy["mean"], rel=1e-13)
    assert all(type(v) is float for v in plain.values())
    with pytest.raises(ValueError, match="no inferences"):
        latency_ms([], [])
    with pytest.raises(ValueError, match="2 starts but 1 ends"):
        latency_ms([0, 1], [2])


def test_throughput_is_count_over_seconds():
    assert throughput_ips(50, 2000000000) == 25.0
    with pytest.raises(ValueError):
        throughput_ips(1, 0)


def test_inputs_are_seeded_and_cover_the_dtype_range():
    f = make_input((1, 8, 8, 3), "float32", seed=0)
    assert f.dtype == np.float32 and f.shape == (1, 8, 8, 3)
    assert f.min() >= -1.0 and f.max() < 1.0 and f.min() < -0.9 and f.max() > 0.9
    assert np.array_equal(f, make_input((1, 8, 8, 3), "float32", seed=0))
    assert not np.array_equal(f, make_input((1, 8, 8, 3), "float32", seed=1))
    i8 = make_input((1, 64, 64, 3), "int8", seed=0)
    assert i8.dtype == np.int8 and i8.min() == -128 and i8.max() == 127
    u8 = make_input((1, 64, 64, 3), "uint8", seed=0)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    with pytest.raises(ModelError, match="unsupported"):
        make_input((1,), "complex64", seed=0)


def _installed_runtimes() -> list:
    """The candidates that import here, in the agent's order of preference (ai_edge_litert on the controller,
    tflite_runtime on an armhf board)."""
    import importlib.util

    return [c for c in runtime_mod.CANDIDATES if importlib.util.find_spec(c[0].split(".")[0]) is not None]


def test_runtime_prefers_the_first_candidate_that_imports():
    assert runtime_mod.CANDIDATES[0][0] == "ai_edge_litert"  # the successor first
    rt = import_runtime()
    assert rt.module_name == _installed_runtimes()[0][0]
    assert rt.version not in ("", "unknown")
    assert rt.describe() == {"module": rt.module_name, "version": rt.version}


def test_runtime_falls_back_to_the_next_candidate(monkeypatch):
    installed = _installed_runtimes()[0]
    monkeypatch.setattr(runtime_mod, "CANDIDATES", (("no_such_runtime_pkg", "x"), installed))
    assert import_runtime().module_name == installed[0]


def test_runtime_missing(monkeypatch):
    monkeypatch.setattr(runtime_mod, "CANDIDATES", (("no_such_runtime_pkg", "x"),))
    with pytest.raises(RuntimeMissing, match="no_such_runtime_pkg.interpreter"):
        import_runtime()


def test_runtime_version_without_distribution_metadata():
    # no distribution metadata and no __version__: a graceful "unknown"
    assert runtime_mod._version("textwrap", "no-such-dist") == "unknown"
    assert runtime_mod._version("numpy", "no-such-dist") == np.__version__
