"""The results store: one folder per run, append-only.

```
<store>/<run_id>/
    run.json              what was asked: experiments, inventory, git revision, planned jobs
    journal.jsonl         append-only job states (planned/started/done/failed), fsynced
    inputs/               copies of the experiments file and inventory as used
    jobs/<job_id>/        raw agent events and the trace the agent wrote
    results/<job_id>.parquet     one row, schema results.schema.RESULTS
    latencies/<job_id>.parquet   per-inference rows
    power/<job_id>.parquet       power samples (boards with a meter)
```

A job's Parquet files are written to a temporary name and renamed, so a crash
leaves either the whole job or nothing. Nothing is ever overwritten.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import StoreError
from orchestrator.results.schema import TABLES

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self.run_id = path.name

    # -- metadata and journal -------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"{self.path / 'run.json'}: unreadable run metadata ({exc})") from None

    def update_meta(self, **fields: Any) -> None:
        meta = self.meta
        meta.update(fields)
        _write_json_atomic(self.path / "run.json", meta)

    def journal(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        with open(self.path / "journal.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def journal_records(self) -> list[dict[str, Any]]:
        path = self.path / "journal.jsonl"
        if not path.exists():
            return []
        records = []
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                # a torn last line after a crash is expected; anything else is corruption
                if n != len(lines):
                    raise StoreError(f"{path}:{n}: corrupt journal line") from None
        return records

    def job_dir(self, job_id: str) -> Path:
        d = self.path / "jobs" / job_id
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- tables ---------------------------------------------------------------
    def write_table(self, table: str, job_id: str, rows: pd.DataFrame | list[dict[str, Any]],
                    schema: pa.Schema | None = None) -> Path:
        """``schema``: the table's own (default), or one that adds columns to it (``board_cache``'s idle and
        membw tables); readers project the table's columns, so a file may hold more."""
        schema = schema if schema is not None else TABLES[table]
        folder = self.path / table
        folder.mkdir(exist_ok=True)
        dest = folder / f"{job_id}.parquet"
        if dest.exists():
            raise StoreError(f"{dest}: already stored; results are never overwritten")
        if isinstance(rows, pd.DataFrame):
            arrow = pa.Table.from_pandas(rows, schema=schema, preserve_index=False)
        else:
            rows = list(rows)
            for row in rows:
                if set(row) != set(schema.names):
                    missing = sorted(set(schema.names) - set(row))
                    extra = sorted(set(row) - set(schema.names))
                    raise StoreError(f"{table} row for {job_id} does not match the schema: "
                                     f"missing {missing}, unexpected {extra}")
            arrow = pa.Table.from_pylist(rows, schema=schema)
        tmp = folder / f".{job_id}.parquet.tmp"
        pq.write_table(arrow, tmp)
        os.replace(tmp, dest)
        return dest

    def read_table(self, table: str) -> pd.DataFrame:
        schema = TABLES[table]
        folder = self.path / table
        files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        parts = []
        for f in files:
            try:
                parts.append(pq.read_table(f, schema=schema))
            except (pa.ArrowInvalid, OSError) as exc:
                raise StoreError(f"{f}: corrupt Parquet file ({exc})") from None
        if not parts:
            return schema.empty_table().to_pandas()
        return pa.concat_tables(parts).to_pandas()

    def discard_incomplete(self, job_id: str) -> list[Path]:
        """Remove table parts of a job that has no results row (an attempt that died midway)."""
        if (self.path / "results" / f"{job_id}.parquet").exists():
            return []
        removed = []
        for table in ("latencies", "power"):
            part = self.path / table / f"{job_id}.parquet"
            if part.exists():
                part.unlink()
                removed.append(part)
        if removed:
            self.journal({"job_id": job_id, "state": "discarded", "files": [str(p) for p in removed]})
        return removed

    def done_job_ids(self) -> set[str]:
        folder = self.path / "results"
        return {f.stem for f in folder.glob("*.parquet")} if folder.exists() else set()


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def create_run(self, run_id: str, meta: dict[str, Any]) -> RunDir:
        if not RUN_ID_PATTERN.match(run_id):
            raise StoreError(f"invalid run id {run_id!r}")
        path = self.root / run_id
        try:
            path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise StoreError(f"{path}: run already exists") from None
        for sub in ("inputs", "jobs", "results", "latencies", "power"):
            (path / sub).mkdir()
        _write_json_atomic(path / "run.json", {"run_id": run_id, **meta})
        return RunDir(path)

    def open_run(self, run_id: str) -> RunDir:
        path = self.root / run_id
        if not RUN_ID_PATTERN.match(run_id) or not (path / "run.json").exists():
            known = ", ".join(self.run_ids()[-5:]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.root} (latest: {known})")
        return RunDir(path)

    def run_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "run.json").exists())

    def runs(self) -> Iterable[RunDir]:
        return (RunDir(self.root / r) for r in self.run_ids())
