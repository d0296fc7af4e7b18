"""Bad command lines get a usage message and exit 2, never a traceback (typer's own click included)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("args, says", [
    (["sweep", "x.yaml", "--report", "later"], "'later' is not one of 'background', 'wait', 'none'"),
    (["sweep", "x.yaml", "--lease-wait", "abc"], "Invalid value for '--lease-wait'"),
    (["sweep"], "give an experiments file, or --resume RUN_ID"),
    (["sweep", "x.yaml", "--no-such-option"], "No such option: --no-such-option"),
    (["sweep", "x.yaml", "--power-cap-w", "0"], "0.0 W: a power cap is a positive number of watts"),
    (["report", "r1", "--power-cap-w", "nan"], "nan W: a power cap is a positive number of watts"),
])
def test_usage_errors_exit_2_with_a_message(tmp_path, args, says):
    proc = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing written
