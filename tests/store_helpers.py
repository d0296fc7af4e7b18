"""Reading a sweep's tables in tests: a run's results, latencies and power are in the store's dataset once
compacted (orchestrator/results/store.py), its idle and membw parts in its own folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from orchestrator.results.store import RunDir, Store


def only_run(store_root: Path) -> Path:
    """The folder of the store's one run (the dataset's table folders beside it are not runs)."""
    (run_id,) = Store(store_root).run_ids()
    return Path(store_root) / run_id


def run_table(run_dir: Path, table: str) -> pd.DataFrame:
    """Every row of a run's table, compacted or not."""
    return RunDir(Path(run_dir)).read_table(table)
