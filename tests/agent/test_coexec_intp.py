"""Co-execution frame counts on a 32-bit numpy (armhf boards: the distribution's numpy 1.19-1.24).

np.bincount casts its input to the platform's index type np.intp with the 'safe' rule. On a 32-bit
build np.intp is int32, so an int64 array (what np.asarray makes of Python ints on a 64-bit machine, or
an explicit int64) raised "Cannot cast array data from dtype('int64') to dtype('int32') according to
the rule 'safe'": a TypeError after the whole measurement window. This machine's numpy is 64-bit (np.intp
is int64 here), so the tests simulate a 32-bit build: np.intp is made int32 and np.bincount refuses what
a 32-bit bincount refuses. Run by a 32-bit numpy (tests/integration/test_emulated_boards.py runs this
folder on the emulated XU3) the simulation changes nothing and the real bincount is also exercised.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

from device_agent.coexec import summary
from tests.agent.agent_proc import REPO

REAL_BINCOUNT = np.bincount


@pytest.fixture
def numpy_32bit(monkeypatch):
    """np.intp as on a 32-bit build, and a bincount that casts its input to it with the 'safe' rule."""

    def bincount(x, weights=None, minlength=0):
        arr = np.asarray(x)
        if not np.can_cast(arr.dtype, np.int32, casting="safe"):
            raise TypeError("Cannot cast array data from dtype('%s') to dtype('int32') according to the rule "
                            "'safe'" % arr.dtype)
        return REAL_BINCOUNT(arr.astype(np.int32), weights, minlength)

    monkeypatch.setattr(np, "intp", np.int32)
    monkeypatch.setattr(np, "bincount", bincount)


def test_the_simulation_refuses_what_32_bit_numpy_refuses(numpy_32bit):
    """The code before the fix (no cast) fails under the simulation, as it did on the boards."""
    with pytest.raises(TypeError, match="int64.*int32.*'safe'"):
        np.bincount(np.asarray([0, 1, 1], dtype=np.int64), minlength=2)
    assert list(np.bincount(np.asarray([0, 1, 1], dtype=np.intp), minlength=3)) == [1, 2, 0]


@pytest.mark.parametrize("worker", [[0, 1, 1, 0, 1], np.array([0, 1, 1, 0, 1], dtype=np.int64),
                                    np.array([0, 1, 1, 0, 1], dtype=np.uint8)])
def test_shares_count_int64_workers_on_a_32_bit_numpy(numpy_32bit, worker):
    out = summary.per_component(["big", "little"], worker, duration_ns=2_000_000_000,
                                tail_worker=np.array([1], dtype=np.int64))
    assert out["big"]["frames"] == 2 and out["little"]["frames"] == 3
    assert out["little"]["share_pct"] == pytest.approx(60.0) and out["big"]["throughput_ips"] == pytest.approx(1.0)
    assert out["little"]["tail_frames"] == 1 and out["big"]["tail_frames"] == 0
    assert all(type(v["frames"]) is int for v in out.values())  # JSON-ready, whatever the numpy


def test_no_member_and_an_idle_member_on_a_32_bit_numpy(numpy_32bit):
    out = summary.per_component(["a", "b", "c"], np.zeros(4, dtype=np.int64), duration_ns=10**9)
    assert [out[n]["frames"] for n in "abc"] == [4, 0, 0]
    assert summary.per_component(["a"], [], duration_ns=10**9)["a"]["frames"] == 0


def test_every_bincount_of_the_agent_casts_to_np_intp():
    """Any np.bincount in the agent gets np.asarray(..., dtype=np.intp) as its input."""
    calls = []
    for path in sorted((REPO / "device_agent").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "bincount":
                arg = node.args[0] if node.args else None
                dtype = next((k.value for k in getattr(arg, "keywords", []) if k.arg == "dtype"), None)
                ok = (isinstance(arg, ast.Call) and getattr(arg.func, "attr", None) in ("asarray", "array")
                      and isinstance(dtype, ast.Attribute) and dtype.attr == "intp")
                calls.append((path.name, node.lineno, ok))
    assert calls, "no bincount found: update this test"
    assert [c for c in calls if not c[2]] == []
