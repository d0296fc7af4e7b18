"""Boards with an emulated userland: their timings are the emulator's, not the SoC's.

A virtual board may run a real ARM root file system through qemu-user on the controller's x86 machine
(the inventory's ``socfarm_emulated``, e.g. ``"qemu-user armhf, Debian 12"``). Everything it measures goes
through the whole pipeline, but qemu translates every instruction: throughput, latencies and window lengths
say how fast the emulator was, not the SoC. Each results row carries the description in ``emulated`` (null
for a real board, and for rows stored before schema 4), and every place that shows timings says so, as it
does for simulated power:

- the sweep's progress line of each job (``[emulated]``) and its end summary;
- the report: a banner naming the boards and their emulation, a mark on every timing of such a board,
  an advisor finding;
- cross-SoC ratios and baseline ratios name an emulated side; a regression verdict never compares an emulated
  series with a real one (``not comparable``).

A job of a ``simulated`` component (a modelled latency: the agent sleeps instead of inferring) carries
``"simulated inference (...)"`` in the same column, so its timings take the same path; the labels then say
*simulated* instead of *emulated* (``label_of``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["NOT_PERFORMANCE", "emulation_text", "emulation_column", "emulated_boards", "is_emulated", "emulation_of",
           "emulation_status", "emulation_status_text", "side_text", "SIMULATED_INFERENCE", "timing_source",
           "label_of"]

#: what every label of an emulated timing says
NOT_PERFORMANCE = "timings are not performance figures"
#: the start of the description of a job whose components are of the ``simulated`` kind
SIMULATED_INFERENCE = "simulated inference"


def timing_source(board_emulated: str | None, simulated: list[str]) -> str | None:
    """A results row's ``emulated``: the board's emulation and/or, for ``simulated`` members (their names),
    ``"simulated inference (modelled latency: npu)"``; None: real timings."""
    parts = [board_emulated] if board_emulated else []
    if simulated:
        parts.insert(0, f"{SIMULATED_INFERENCE} (modelled latency: {', '.join(simulated)})")
    return "; ".join(parts) or None


def label_of(texts) -> str:
    """``"simulated"`` when every description among ``texts`` (one, or several) is a simulated inference,
    ``"emulated"`` when none is, ``"emulated/simulated"`` for a mix; ``""`` for none."""
    parts = [p.strip() for t in ([texts] if isinstance(texts, str) else texts) for p in emulation_text(t).split(";")]
    parts = [p for p in parts if p]
    sim = [p.startswith(SIMULATED_INFERENCE) for p in parts]
    if not parts:
        return ""
    return "simulated" if all(sim) else "emulated" if not any(sim) else "emulated/simulated"


def emulation_text(value: Any) -> str:
    """The description of one row or group (``""``: not emulated; null, NaN and blanks are not emulated)."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value).strip()


def emulation_column(frame: pd.DataFrame, column: str = "emulated") -> pd.Series:
    """Per row, its description as text, ``""`` where not emulated (vectorised: a store has many rows; a frame
    without the column, e.g. of rows stored before schema 4: none is)."""
    if column not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    col = frame[column].astype(object)
    return col.where(col.notna(), "").astype(str).str.strip()


def is_emulated(results: pd.DataFrame) -> pd.Series:
    """Per row, whether its userland was emulated."""
    return emulation_column(results) != ""


def emulation_of(values) -> str:
    """The distinct descriptions among ``values`` joined with ``"; "`` (``""``: none emulated)."""
    return "; ".join(dict.fromkeys(t for t in map(emulation_text, values) if t))


def emulated_boards(results: pd.DataFrame) -> dict[str, str]:
    """Board -> its emulation, for the boards of ``results`` with an emulated userland (sorted by board)."""
    if results.empty or "emulated" not in results.columns:
        return {}
    rows = results[is_emulated(results)]
    return {str(b): emulation_of(g["emulated"]) for b, g in rows.groupby("board", sort=True)}


def side_text(boards: dict[str, str]) -> str:
    """``"xu3-1, hikey-1 (qemu-user armhf, Debian 12; qemu-user arm64, Debian 12)"``: boards and emulations."""
    emulations = "; ".join(dict.fromkeys(boards.values()))
    return f"{', '.join(boards)} ({emulations})"


STATUS_COLUMNS = ["board", "emulated"]


def emulation_status(run, results: pd.DataFrame | None = None) -> dict[str, str] | None:
    """For the end of a sweep: the run's emulated boards and their emulation (None: no row is emulated).
    ``results``: the run's results with ``STATUS_COLUMNS`` when the caller has read them already."""
    from orchestrator.analysis.tables import read_columns

    boards = emulated_boards(read_columns(run, "results", STATUS_COLUMNS) if results is None else results)
    return boards or None


def emulation_status_text(boards: dict[str, str]) -> str:
    what = {"simulated": SIMULATED_INFERENCE, "emulated": "emulated userland"}.get(
        label_of(list(boards.values())), "emulated userland or simulated inference")
    return f"{what} on {side_text(boards)}: their {NOT_PERFORMANCE}"
