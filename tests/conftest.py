from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE_ZOO = REPO / "tests" / "fixtures" / "models"

# A shell starts background commands with SIGINT ignored, and an ignored signal stays ignored
# across exec: the agents and sweeps the tests start would then never see the Ctrl-C that the
# interrupt tests send. Handled (not ignored) here, it is back to the default in every child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write(tmp_path: Path):
    """write("name.yaml", text) -> path; dedents the text."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write
