"""Live progress of a sweep: one line per board, one for the whole run (rich)."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from orchestrator.analysis.emulation import NOT_PERFORMANCE, SIMULATED_INFERENCE, emulation_text, label_of
from orchestrator.jobs import Job

#: after the throughput of a job whose board's userland is emulated (its timings are the emulator's); no
#: square brackets: the live display reads job lines as rich markup
EMULATED_LABEL = "(emulated)"


def timing_text(row: dict[str, Any]) -> str:
    """'12.3 img/s', or '12.3 img/s (emulated)' for a row of a board with an emulated userland ('(simulated)'
    for a row of a simulated component)."""
    text = f"{row['throughput_ips']:.1f} img/s"
    return text + f" ({label_of(row.get('emulated'))})" if emulation_text(row.get("emulated")) else text


def emulated_note(board: str, emulation: str) -> str:
    """Said once per board before its jobs: why its job lines say (emulated), or (simulated)."""
    if label_of(emulation) == "simulated":
        return f"{board}: {emulation}: its {NOT_PERFORMANCE}; those job lines say (simulated)"
    return (f"{board}: emulated userland ({emulation}): its {NOT_PERFORMANCE}; its job lines say "
            f"{EMULATED_LABEL}")


def power_text(row: dict[str, Any]) -> str:
    """', 3.41 W (simulated), 0.0123 J/img active' for a results row with power; '' without."""
    if row.get("mean_power_w") is None:
        return f", energy: {row['energy_note']}" if row.get("energy_note") else ""
    text = f", {row['mean_power_w']:.2f} W" + (" (simulated)" if row.get("power_simulated") else "")
    if row.get("energy_per_image_j") is not None:
        text += f", {row['energy_per_image_j']:.4g} J/img active"
    return text


class SweepProgress:
    """Thread-safe; every method may be called from a board's worker thread."""

    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[str, Any] = {}
        self._total: Any = None
        self._counts: dict[str, list[int]] = {}

    @property
    def live(self) -> bool:
        """Animated display on a terminal; one plain line per finished job otherwise (CI logs)."""
        return self.enabled and self.console.is_terminal

    def note(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False, soft_wrap=True)

    def board_emulated(self, board: str, emulation: str) -> None:
        """Once per board with an emulated userland, before its jobs (plain text: the emulation is the
        inventory's words, not markup)."""
        if self.enabled:
            self.console.print(emulated_note(board, emulation), highlight=False, soft_wrap=True, markup=False)

    def provision_step(self, text: str) -> None:
        if self.live:
            self.console.print(f"  [dim]{escape(text)}[/dim]", highlight=False, soft_wrap=True)
        elif self.enabled and "FAILED" in text:
            self.console.print(f"  {text}", highlight=False, soft_wrap=True, markup=False)

    def start_jobs(self, per_board: dict[str, int]) -> None:
        self._counts = {b: [0, n] for b, n in per_board.items()}
        if not self.live:
            return
        self._progress = Progress(
            TextColumn("{task.fields[board]:<14}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._total = self._progress.add_task("", total=sum(per_board.values()), board="all boards")
        for board, n in per_board.items():
            self._tasks[board] = self._progress.add_task("waiting", total=n, board=board)

    def job_started(self, job: Job) -> None:
        if self._progress:
            self._progress.update(self._tasks[job.board], description=f"{job.describe()}: loading")

    def agent_event(self, job: Job, event: dict[str, Any]) -> None:
        if not self._progress:
            return
        kind = event.get("event")
        if kind == "progress":
            text = f"{job.describe()}: {event.get('phase')} {event.get('count')} ({event.get('elapsed_s', 0):.1f} s)"
            self._progress.update(self._tasks[job.board], description=text)

    def job_done(self, job: Job, row: dict[str, Any]) -> None:
        self._advance(job, f"{job.describe()}: {timing_text(row)}{power_text(row)} {row['verdict']}")

    def job_failed(self, job: Job, message: str) -> None:
        self._advance(job, f"{job.describe()}: FAILED")
        if self.enabled:
            self.console.print(f"[red]{job.job_id} failed:[/red] {escape(message)}", highlight=False, soft_wrap=True)

    def _advance(self, job: Job, text: str) -> None:
        with self._lock:
            done = self._counts[job.board]
            done[0] += 1
            if self._progress:
                self._progress.update(self._tasks[job.board], advance=1, description=text)
                self._progress.update(self._total, advance=1)
            elif self.enabled:
                self.console.print(f"[{done[0]}/{done[1]}] {text}", highlight=False, soft_wrap=True, markup=False)

    def close(self) -> None:
        if self._progress:
            self._progress.stop()
            self._progress = None
