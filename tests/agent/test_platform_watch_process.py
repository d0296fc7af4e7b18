"""``python -m device_agent run -`` with watched (unpinned) domains on a virtual XU3: never written, and a
thermal cap injected during the window makes the job INVALID."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.agent.agent_proc import REPO, agent_env, run_spec
from tests.agent.test_platform_process import platform_job
from tests.agent.virtual_board import snapshot, xu3

WATCHED = {"cpufreq": {"policy4": {"watch": True, "loaded": True}, "policy0": {"watch": True}},
           "devfreq": {"11800000.gpu": {"watch": True}},
           "thermal_zones": ["thermal_zone0", "thermal_zone4"]}


def test_watched_domains_are_sampled_and_left_alone(tmp_path):
    (tmp_path / "sys").mkdir()
    with xu3(tmp_path / "sys") as sim:
        time.sleep(sim.settle_s)
        before = snapshot(tmp_path / "sys")
        run = run_spec(platform_job(tmp_path, platform=WATCHED, rules={"min_duration_s": 0.5}))
        after = snapshot(tmp_path / "sys")
    assert run.returncode == 0, run.stderr
    plat = run.events[0]
    assert plat["event"] == "platform"
    assert plat["cpufreq"]["policy4"] == {"mode": "watch", "max_khz": 2000000, "limit_khz": 2000000,
                                          "cur_khz": 2000000, "governor": "ondemand", "loaded": True}
    summary = run.events[-1]
    assert summary["verdict"] == "VALID", summary["reasons"]
    p4 = summary["platform"]["cpufreq"]["policy4"]
    assert p4["below_s"] == 0 and p4["min_khz"] == 2000000 and p4["samples"] >= 2
    assert summary["platform"]["thermal"]["thermal_zone0"]["start_mdegc"] is not None
    assert after == before


def test_a_cap_during_an_unpinned_window_makes_the_job_invalid(tmp_path):
    (tmp_path / "sys").mkdir()
    spec = platform_job(tmp_path, platform=WATCHED, rules={"min_duration_s": 1.5, "max_duration_s": 10.0})
    with xu3(tmp_path / "sys") as sim:
        proc = subprocess.Popen([sys.executable, "-m", "device_agent", "run", "-"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                env=agent_env())
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        lines = []
        for line in proc.stdout:  # wait for the window to open
            lines.append(json.loads(line))
            if lines[-1]["event"] == "progress" and lines[-1]["phase"] == "measure":
                break
        sim.throttle("policy4", 1400000)
        time.sleep(0.5)
        sim.throttle("policy4", None)
        lines += [json.loads(x) for x in proc.stdout]
        proc.wait(60)
        proc.stderr.close()
    summary = lines[-1]
    assert proc.returncode == 0 and summary["event"] == "summary", lines[-1]
    assert summary["verdict"] == "INVALID"
    reasons = [r for r in summary["reasons"] if r.startswith("throttled: policy4 (not pinned) was capped below its "
                                                             "2000000 kHz maximum for ")]
    assert reasons and reasons[0].endswith("(min 1400000 kHz, limit down to 2000000 kHz)"), summary["reasons"]
    assert len(summary["reasons"]) == 1  # policy0 and the GPU were not capped
    assert summary["platform"]["cpufreq"]["policy4"]["below_s"] > 0
