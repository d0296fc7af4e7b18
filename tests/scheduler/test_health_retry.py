"""Health judgement and retry classification (pure functions)."""

from __future__ import annotations

from orchestrator.config.inventory import Board, Component
from orchestrator.errors import AgentError, ConfigError, MeterError
from orchestrator.health import HealthLimits, health_command, judge_health
from orchestrator.scheduler.retry import RetryPolicy, error_class, is_board_failure, is_retryable
from orchestrator.transport.ssh import BoardUnreachable, SshAuthError

BOARD = Board(name="b", soc="s", work_dir="/w", components=[Component(name="c", cpus=[0])])
DF = "/dev/vda 263174212 20000000 {free} 10% /\n"


def test_healthy_board():
    temps = "temp thermal_zone0 45000\ntemp thermal_zone1 47000\n"
    assert judge_health(BOARD, DF.format(free=5_000_000) + temps) == []


def test_full_disk_and_hot_board():
    temps = "temp thermal_zone0 45000\ntemp thermal_zone3 91000\n"
    problems = judge_health(BOARD, DF.format(free=1000) + temps, HealthLimits())
    assert any("MB free" in p for p in problems) and "idle temperature 91.0 °C (thermal_zone3) > 80 °C" in problems


def test_unreadable_df():
    assert judge_health(BOARD, "df: /w: No such file or directory\n") == ["cannot read free space of /w"]


def test_health_command_on_a_board_finds_a_missing_agent_and_a_readonly_governor(tmp_path):
    """The real shell command, run here on a fake sysfs tree (the same command runs over SSH)."""
    import subprocess

    sysfs, work, agent = tmp_path / "sys", tmp_path / "work", tmp_path / "agent"
    work.mkdir()
    for policy in ("policy0", "policy4"):
        gov = sysfs / "devices/system/cpu/cpufreq" / policy / "scaling_governor"
        gov.parent.mkdir(parents=True)
        gov.write_text("schedutil\n")
    zone = sysfs / "class/thermal/thermal_zone0/temp"
    zone.parent.mkdir(parents=True)
    zone.write_text("41000\n")
    board = Board(name="b", soc="s", work_dir=str(work), sysfs_root=str(sysfs), components=[
        Component(name="little", cpus=[0], cpufreq_policy="policy0"),
        Component(name="big", cpus=[4], cpufreq_policy="policy4")])

    def health():
        out = subprocess.run(["sh", "-c", health_command(board, str(agent))], capture_output=True, text=True,
                             timeout=30, check=True).stdout
        return judge_health(board, out, HealthLimits(min_free_mb=0))

    (agent / "device_agent").mkdir(parents=True)
    (agent / "device_agent" / "__init__.py").write_text("")
    assert health() == []
    (agent / "device_agent" / "__init__.py").unlink()
    (sysfs / "devices/system/cpu/cpufreq/policy4/scaling_governor").chmod(0o444)
    problems = health()
    assert any("device agent is not on the board" in p for p in problems)
    import os
    if os.geteuid() != 0:  # root writes a read-only file: only a non-root run sees this one
        assert any("governor not writable for policy4" in p for p in problems)


def test_a_readonly_governor_is_a_health_problem():
    out = DF.format(free=5_000_000) + "readonly policy4\n"
    assert judge_health(BOARD, out) == ["cpufreq governor not writable for policy4 (frequencies cannot be held)"]


def test_retry_classification():
    assert is_retryable(BoardUnreachable("x")) and is_board_failure(BoardUnreachable("x"))
    assert is_retryable(MeterError("x")) and not is_board_failure(MeterError("x"))
    assert is_retryable(AgentError("x", retryable=True)) and not is_retryable(AgentError("x", retryable=False))
    assert not is_retryable(SshAuthError("x")) and not is_retryable(ConfigError("x"))
    assert error_class(AgentError("x", error_class="SpecError")) == "SpecError"
    assert RetryPolicy(backoff_s=(1, 3)).delay_s(1) == 1 and RetryPolicy(backoff_s=(1, 3)).delay_s(5) == 3
