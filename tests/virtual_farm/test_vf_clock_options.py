"""Board clock offsets without namespaces: defaults, BoardSpec checks, ``--clock-offsets`` / ``--same-clock``."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import pytest

from orchestrator.virtual.__main__ import parse_boards, parse_clock_offsets, with_clock_offsets
from orchestrator.virtual.farm import BoardSpec, VirtualFarm, default_clock_offset_s, seconds_to_ns
from orchestrator.virtual.sshd import in_time_namespace, start_command
from tests.virtual_farm.helpers import REPO, require_netns

NAMES = ["xu3-1", "xu3-2", "hikey-1"]


def test_default_offsets_differ_per_board_and_span_seconds_to_hours():
    offsets = [default_clock_offset_s(i) for i in range(200)]
    assert offsets[:3] == [17.25, 3740.75, 7464.25]
    assert len(set(offsets)) == len(offsets) and all(o > 0 for o in offsets)
    assert offsets[0] < 60 and 3600 <= offsets[1] < 7200 and offsets[2] >= 7200
    # not whole seconds: an offset rounded to seconds somewhere would show
    assert all(o != math.floor(o) for o in offsets)


def test_farm_offsets_default_by_index_or_as_given(tmp_path):
    farm = VirtualFarm(tmp_path, [BoardSpec("xu3-1", "xu3"), BoardSpec("xu3-2", "xu3", clock_offset_s=-2.5),
                                  BoardSpec("hikey-1", "hikey", clock_offset_s=0.1)])
    assert farm.clock_offset_ns("xu3-1") == 17_250_000_000
    assert farm.clock_offset_ns("xu3-2") == -2_500_000_000
    assert farm.clock_offset_ns("hikey-1") == 100_000_000
    with pytest.raises(KeyError, match="no board 'rpi-1'"):
        farm.clock_offset_ns("rpi-1")


def test_seconds_to_ns_is_exact_as_written():
    assert seconds_to_ns(3740.75) == 3_740_750_000_000
    assert seconds_to_ns(7380.123456789) == 7_380_123_456_789
    assert seconds_to_ns(-1.5) == -1_500_000_000
    assert seconds_to_ns(3600) == 3_600_000_000_000


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e12, "3600", True])
def test_board_spec_refuses_bad_offsets(bad):
    with pytest.raises(ValueError, match="board xu3-1: clock offset"):
        BoardSpec("xu3-1", "xu3", clock_offset_s=bad)


def test_clock_offsets_option_parses_names_and_seconds():
    assert parse_clock_offsets("xu3-1=3600, hikey-1=-2.5,xu3-2=0.000000001", NAMES) == {
        "xu3-1": 3600.0, "hikey-1": -2.5, "xu3-2": 1e-9}
    specs = with_clock_offsets(parse_boards("xu3:2,hikey970:1"), clock_offsets="hikey-1=3600")
    assert [s.clock_offset_s for s in specs] == [None, None, 3600.0]
    assert [s.clock_offset_s for s in with_clock_offsets(specs, same_clock=True)] == [0.0, 0.0, 0.0]
    assert with_clock_offsets(specs) == specs


@pytest.mark.parametrize("text, message", [
    ("xu3-9=5", "no board 'xu3-9' in this farm; boards: xu3-1, xu3-2, hikey-1"),
    ("xu3-1=soon", "xu3-1='soon': the offset must be a number of seconds"),
    ("xu3-1=nan", "must be a finite number of seconds"),
    ("xu3-1", "'xu3-1' is not NAME=SECONDS"),
    ("xu3-1=", "'xu3-1=' is not NAME=SECONDS"),
    ("xu3-1=1,xu3-1=2", "board 'xu3-1' is given twice"),
    (",", "wants NAME=SECONDS"),
])
def test_clock_offsets_option_errors_say_what_is_wrong(text, message):
    with pytest.raises(ValueError) as err:
        parse_clock_offsets(text, NAMES)
    assert message in str(err.value)


def time_ns() -> tuple[int, int]:
    return time.monotonic_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def cli_up(*args: str) -> subprocess.CompletedProcess:
    """``up`` with bad options: refused before anything is created (no root needed)."""
    return subprocess.run([sys.executable, "-m", "orchestrator.virtual", "up", "--state", "/nonexistent/vf", *args],
                          cwd=REPO, check=False, capture_output=True, text=True, timeout=60)


def test_cli_refuses_bad_clock_offsets_with_a_usage_error():
    r = cli_up("--boards", "xu3:1,hikey970:1", "--clock-offsets", "xu3-2=60")
    assert r.returncode == 2 and "no board 'xu3-2' in this farm; boards: xu3-1, hikey-1" in r.stderr, r.stderr
    r = cli_up("--boards", "xu3:1", "--clock-offsets", "xu3-1=1h")
    assert r.returncode == 2 and "xu3-1='1h': the offset must be a number of seconds" in r.stderr, r.stderr
    r = cli_up("--boards", "xu3:1", "--clock-offsets", "xu3-1=1e300")
    assert r.returncode == 2 and "board xu3-1: clock offset: 1e+300 s is not a finite offset" in r.stderr, r.stderr
    r = cli_up("--boards", "xu3:1", "--clock-offsets", "xu3-1=5", "--same-clock")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr, r.stderr


def test_start_command_wraps_sshd_in_a_time_namespace(tmp_path):
    cmd = start_command(netns="sfx-xu3-1", hostname="xu3-1", config=tmp_path / "sshd_config", max_lifetime_s=60,
                        clock_offset_ns=3_740_750_000_000)
    assert cmd[:4] == ["ip", "netns", "exec", "sfx-xu3-1"]
    assert cmd[4:10] == in_time_namespace(3_740_750_000_000, [])
    assert cmd[10:15] == ["unshare", "--uts", "--fork", "--kill-child", "--mount"]
    # timeout stays in the process group of the Popen (unshare blocks SIGTERM while it waits)
    assert "exec timeout --foreground -k 5 60 /usr/sbin/sshd -D -e -f" in cmd[-1]


def test_time_namespace_launcher_offsets_a_child_to_the_nanosecond():
    require_netns()  # root, to make a time namespace
    probe = [sys.executable, "-c",
             "import time; print(time.monotonic_ns(), time.clock_gettime_ns(time.CLOCK_BOOTTIME))"]
    offset = 3_723_500_000_007
    before = time_ns()
    r = subprocess.run(in_time_namespace(offset, probe), check=False, capture_output=True, text=True, timeout=30)
    after = time_ns()
    assert r.returncode == 0, r.stderr
    monotonic, boottime = map(int, r.stdout.split())
    assert before[0] + offset <= monotonic <= after[0] + offset
    assert before[1] + offset <= boottime <= after[1] + offset
    r = subprocess.run(in_time_namespace(-10**18, ["true"]), check=False, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "a clock may not go below 0" in r.stderr
