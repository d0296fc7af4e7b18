"""Health judgement and retry classification (pure functions)."""

from __future__ import annotations

from orchestrator.config.inventory import Board, Component
from orchestrator.errors import AgentError, ConfigError, MeterError
from orchestrator.health import HealthLimits, judge_health
from orchestrator.scheduler.retry import RetryPolicy, error_class, is_board_failure, is_retryable
from orchestrator.transport.ssh import BoardUnreachable, SshAuthError

BOARD = Board(name="b", soc="s", work_dir="/w", components=[Component(name="c", cpus=[0])])
DF = "/dev/vda 263174212 20000000 {free} 10% /\n"


def test_healthy_board():
    assert judge_health(BOARD, DF.format(free=5_000_000) + "temp 45000\ntemp 47000\n") == []


def test_full_disk_and_hot_board():
    problems = judge_health(BOARD, DF.format(free=1000) + "temp 91000\n", HealthLimits())
    assert any("MB free" in p for p in problems) and any("91.0 °C" in p for p in problems)


def test_unreadable_df():
    assert judge_health(BOARD, "df: /w: No such file or directory\n") == ["cannot read free space of /w"]


def test_retry_classification():
    assert is_retryable(BoardUnreachable("x")) and is_board_failure(BoardUnreachable("x"))
    assert is_retryable(MeterError("x")) and not is_board_failure(MeterError("x"))
    assert is_retryable(AgentError("x", retryable=True)) and not is_retryable(AgentError("x", retryable=False))
    assert not is_retryable(SshAuthError("x")) and not is_retryable(ConfigError("x"))
    assert error_class(AgentError("x", error_class="SpecError")) == "SpecError"
    assert RetryPolicy(backoff_s=(1, 3)).delay_s(1) == 1 and RetryPolicy(backoff_s=(1, 3)).delay_s(5) == 3
