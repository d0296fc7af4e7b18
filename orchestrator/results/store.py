"""The results store: one folder per run for what a run writes as it goes, and one Hive-partitioned Parquet
dataset per table for every finished board of every run.

```
<store>/<run_id>/
    run.json              what was asked: experiments, inventory, git revision, planned jobs
    journal.jsonl         append-only job states (planned/started/done/failed/compacted), fsynced
    inputs/               copies of the experiments file and inventory as used
    jobs/<job_id>/        raw agent events and the trace the agent wrote
    results/<job_id>.parquet     staged parts: one per finished job, until compacted
    latencies/<job_id>.parquet
    power/<job_id>.parquet       (boards with a meter or sensors)
    idle/, membw/                a board's idle power and bandwidth parts (a few per board; kept here)
<store>/results/run_id=<run_id>/board=<board>/part-<digest>.parquet    compacted: one file per board and pass
<store>/latencies/run_id=<run_id>/board=<board>/part-<digest>.parquet
<store>/power/run_id=<run_id>/board=<board>/part-<digest>.parquet
<store>/idle/run_id=<run_id>/board=<board>/<part>.parquet             copies of the run's idle and membw parts
<store>/membw/run_id=<run_id>/board=<board>/<part>.parquet
```

Why this layout. A job's rows are written at once as parts of their own (temporary name, fsync, rename), so
a crash loses at most the job in flight; that stays the write path. One file per job does not scale to
64 boards x hundreds of jobs a night (every report opens every file), so at the end of a board's share
(``RunDir.compact``), at the end of the run, on ``--resume`` and by ``orchestrator compact`` the staged parts
of finished jobs move into one file per table per board: a *pass*. The dataset lives at the store's top,
one folder per table, because a table is one schema and Hive partitioning wants ``key=value`` folders all
the way down: ``pd.read_parquet("runs/results")``, ``spark.read.parquet("runs/results")`` and DuckDB's
``read_parquet('runs/results/*/*/*.parquet', hive_partitioning = true)`` then read every run in one call,
with ``run_id`` and ``board`` from the path (so compacted files do not hold those two columns: pyarrow
refuses a column that is both in the file and in the path; this module's readers put them back). The run's
folder keeps everything else (journal, raw files, idle and bandwidth parts, which the dataset only copies).

A pass is committed by its results file, written last: its footer (``socfarm.compacted``) names the staged
parts it holds. Readers take the committed passes and the staged parts no pass names, so a crash anywhere in
a compaction shows every job exactly once: before the commit the staged parts still count (and the pass's
other files, without a results file of the same name, are removed by the next compaction); after it the
staged parts are removed, by this compaction or the next. A pass's name is a digest of the parts it holds,
so doing it again after a crash writes the same files, and a file is created by a hard link that fails when
the name exists: nothing is ever overwritten. Runs written before the dataset existed are simply runs whose
parts are all staged: they read as before, and ``orchestrator compact`` (no run id: every run) moves them
into the dataset. A part whose rows are not of one board or not of this run stays staged (and is counted).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import StoreError
from orchestrator.results.schema import TABLES

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: Tables whose staged parts a compaction moves into the dataset (and the order it writes them: results last).
COMPACTED = ("latencies", "power", "results")
#: Tables whose parts a compaction copies into the dataset; the run reads its own.
COPIED = ("idle", "membw")
#: The Hive partition keys, in path order.
PARTITION_KEYS = ("run_id", "board")
PASS_KEY = b"socfarm.compacted"
#: Rows per row group of a compacted file (a job's latencies or power samples are one part of it).
ROW_GROUP_ROWS = 128 * 1024
#: Folder names at the store's top that belong to the dataset: not run ids.
RESERVED = frozenset(TABLES)
#: Listings a read tries while compactions move the parts it listed (each pass moves them once).
READ_ATTEMPTS = 5
T = TypeVar("T")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def partition_values(path: Path) -> dict[str, str]:
    """``run_id`` and ``board`` from a dataset file's ``key=value`` folders (empty for a staged part)."""
    keys = {}
    for segment in Path(path).parent.parts[-2:]:
        key, sep, value = segment.partition("=")
        if sep and key in PARTITION_KEYS:
            keys[key] = unquote(value)
    return keys


def read_part(path: Path, table: str, columns: Sequence[str] | None = None) -> pa.Table:
    """``columns`` (default: all) of one stored file of ``table``, typed as the table's schema says: a column
    added to the schema after the file was written reads as nulls, ``run_id`` and ``board`` of a compacted
    file come from its path. A corrupt or unreadable file is a :class:`StoreError` naming it."""
    schema = TABLES[table]
    fields = [schema.field(c) for c in (columns if columns is not None else schema.names)]
    try:
        with pq.ParquetFile(path) as pf:
            present = set(pf.schema_arrow.names)
            data = pf.read(columns=[f.name for f in fields if f.name in present])
        keys = partition_values(path)
        arrays = []
        for f in fields:
            if f.name in present:
                arrays.append(data.column(f.name).cast(f.type))
            elif f.name in keys:
                arrays.append(pa.array([keys[f.name]], f.type).take(pa.array([0] * data.num_rows, pa.int32())))
            else:
                arrays.append(pa.nulls(data.num_rows, f.type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None


def _part_keys(path: Path, table: str) -> tuple[set, set]:
    """The run ids and job ids of a part's rows, from its row groups' statistics when they tell (a part a sweep
    wrote: one job), else from its two columns."""
    try:
        with pq.ParquetFile(path) as pf:
            names = pf.schema_arrow.names
            found: dict[str, set] = {"run_id": set(), "job_id": set()}
            for g in range(pf.metadata.num_row_groups):
                group = pf.metadata.row_group(g)
                for key in found:
                    if key not in names:
                        raise KeyError(key)
                    stats = group.column(names.index(key)).statistics
                    if stats is None or not stats.has_min_max or stats.min != stats.max or stats.null_count:
                        raise KeyError(key)
                    found[key].add(stats.min)
            return found["run_id"], found["job_id"]
    except KeyError:
        data = read_part(path, table, ["run_id", "job_id"])
        return set(data.column("run_id").to_pylist()), set(data.column("job_id").to_pylist())
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_parquet(tables: Iterable[pa.Table], schema: pa.Schema, dest: Path) -> bool:
    """Write ``tables`` (``schema``'s columns, streamed: one part in memory at a time, row groups of up to
    ``ROW_GROUP_ROWS``) as ``dest``, whole or not at all, never over an existing file; False when it existed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            pending: list[pa.Table] = []
            for table in tables:
                pending.append(table.select(schema.names))
                if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(dest.parent)
    return True


@dataclass
class Compaction:
    """What one ``RunDir.compact`` did."""

    passes: list[Path] = field(default_factory=list)  # the results file of each pass written
    jobs: int = 0  # results parts moved into the dataset
    parts: int = 0  # staged parts removed (moved ones and leftovers of an earlier pass)
    copied: int = 0  # idle / membw parts copied
    left: dict[str, str] = field(default_factory=dict)  # staged part -> why it stays staged


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self.run_id = path.name
        self._pass_records: dict[Path, dict[str, Any]] = {}  # committed passes are never rewritten: read once

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

    # -- where a table's rows are -----------------------------------------------
    def dataset_dir(self, table: str, board: str | None = None) -> Path:
        """This run's partition of ``table`` in the store's dataset (of one board when given)."""
        d = self.path.parent / table / f"run_id={self.run_id}"
        return d / f"board={quote(board, safe='')}" if board is not None else d

    def _staged(self, table: str) -> list[Path]:
        folder = self.path / table
        return sorted(folder.glob("*.parquet")) if folder.exists() else []

    def _passes(self) -> dict[Path, dict[str, Any]]:
        """This run's committed passes: results file -> the record in its footer."""
        root = self.dataset_dir("results")
        found = {}
        for board_dir in sorted(root.glob("board=*")) if root.is_dir() else []:
            for f in sorted(board_dir.glob("*.parquet")):
                record = self._pass_records.get(f)
                if record is None:
                    try:
                        raw = (pq.read_schema(f).metadata or {}).get(PASS_KEY)
                        record = json.loads(raw) if raw else None
                    except (pa.ArrowException, OSError, ValueError) as exc:
                        raise StoreError(f"{f}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None
                    if not isinstance(record, dict) or not isinstance(record.get("parts"), dict):
                        raise StoreError(f"{f}: no {PASS_KEY.decode()} record in its footer; not a compacted pass")
                    self._pass_records[f] = record
                found[f] = record
        return found

    def _consumed(self, table: str, passes: dict[Path, dict[str, Any]] | None = None) -> set[str]:
        passes = self._passes() if passes is None else passes
        return {name for record in passes.values() for name in record["parts"].get(table, [])}

    def table_files(self, table: str) -> list[Path]:
        """Every file holding rows of ``table`` for this run, each row in exactly one: the committed passes in
        the dataset, then the staged parts no pass holds."""
        staged = self._staged(table)  # listed before the passes: a pass committed in between then hides its parts
        if table not in COMPACTED:
            return staged
        passes = self._passes()
        files = []
        for results_file, record in passes.items():
            f = self.path.parent / table / results_file.parent.parent.name / results_file.parent.name / \
                results_file.name
            if table in record.get("files", []):
                if not f.exists():
                    raise StoreError(f"{f}: missing, but the committed pass {results_file} holds rows of it")
                files.append(f)
        consumed = self._consumed(table, passes)
        return files + [p for p in staged if p.stem not in consumed]

    # -- tables ---------------------------------------------------------------
    def write_table(self, table: str, job_id: str, rows: pd.DataFrame | list[dict[str, Any]],
                    schema: pa.Schema | None = None) -> Path:
        """``schema``: the table's own (default), or one that adds columns to it (``board_cache``'s idle and
        membw tables); readers project the table's columns, so a file may hold more."""
        schema = schema if schema is not None else TABLES[table]
        folder = self.path / table
        folder.mkdir(exist_ok=True)
        dest = folder / f"{job_id}.parquet"
        if dest.exists() or (table == "results" and job_id in self._consumed(table)):
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

    def read_files(self, table: str, read: Callable[[list[Path]], T]) -> T:
        """``read(files)`` over ``table_files(table)``, every row once even while a compaction runs (the
        background report's process): one may move staged parts into a pass between the listing and the
        reading. A listed part is then gone, and the files are listed again (the pass now holds its rows)."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            files = self.table_files(table)
            try:
                return read(files)
            except StoreError:
                if attempt == READ_ATTEMPTS or all(f.exists() for f in files):
                    raise  # a file that is there and unreadable: corrupt, not moved
        raise AssertionError("unreachable")

    def read_table(self, table: str) -> pd.DataFrame:
        parts = self.read_files(table, lambda files: [read_part(f, table) for f in files])
        if not parts:
            return TABLES[table].empty_table().to_pandas()
        return pa.concat_tables(parts).to_pandas()

    def discard_incomplete(self, job_id: str) -> list[Path]:
        """Remove table parts of a job that has no results row (an attempt that died midway)."""
        parts = [p for p in (self.path / t / f"{job_id}.parquet" for t in ("latencies", "power")) if p.exists()]
        if not parts or (self.path / "results" / f"{job_id}.parquet").exists() or \
                job_id in self._consumed("results"):
            return []  # (a compacted job's staged parts are a pass's leftovers: the next compaction's to remove)
        for part in parts:
            part.unlink()
        self.journal({"job_id": job_id, "state": "discarded", "files": [str(p) for p in parts]})
        return parts

    def done_job_ids(self) -> set[str]:
        return {f.stem for f in self._staged("results")} | self._consumed("results")

    # -- compaction -----------------------------------------------------------
    @contextmanager
    def _compaction_lock(self, exclusive: bool) -> Iterator[None]:
        """Across threads and processes: compactions of given jobs (each board's share, its own folders) run side
        by side; one of every staged part (the run's end, --resume, the CLI) runs alone."""
        with open(self.path / ".compact.lock", "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def compact(self, job_ids: Iterable[str] | None = None) -> Compaction:
        """Move the staged parts of finished jobs (a results part and its latencies and power parts) into this
        run's partitions of the dataset: one pass per board, one file per table. ``job_ids``: only those jobs'
        parts (the end of a board's share); default every staged part, and the run's idle and membw parts are
        copied too (the end of the run, ``--resume``, ``orchestrator compact``). Parts of a job without a
        results row stay staged (``discard_incomplete`` is theirs). Safe to interrupt anywhere and to repeat."""
        with self._compaction_lock(exclusive=job_ids is None):
            out = Compaction()
            passes = self._passes()
            consumed = {t: self._consumed(t, passes) for t in COMPACTED}
            if job_ids is None:
                staged = {t: self._staged(t) for t in COMPACTED}
            else:
                wanted = sorted(set(job_ids))
                staged = {t: [p for p in (self.path / t / f"{j}.parquet" for j in wanted) if p.exists()]
                          for t in COMPACTED}
            leftovers = [p for t in COMPACTED for p in staged[t] if p.stem in consumed[t]]
            board_of_job: dict[str, str] = {}
            by_board: dict[str, dict[str, list[tuple[str, Path, pa.Table | None]]]] = {}
            for table in ("results", "latencies", "power"):
                for part in staged[table]:
                    if part.stem in consumed[table]:
                        continue
                    # results parts whole (one row each); of the others only whose rows they are: their rows are
                    # read one part at a time as the pass is written
                    if table == "results":
                        data = read_part(part, table)
                        runs, jobs = set(data.column("run_id").to_pylist()), data.column("job_id").to_pylist()
                    else:
                        data = None
                        runs, jobs = _part_keys(part, table)
                    if not jobs:
                        out.left[str(part)] = "no rows"
                        continue
                    if runs != {self.run_id}:
                        out.left[str(part)] = f"rows of another run than {self.run_id}"
                        continue
                    if table == "results":
                        boards = set(data.column("board").to_pylist())
                    else:
                        boards = {board_of_job.get(j) for j in jobs}
                        if None in boards:
                            continue  # a job without a results row: not finished, or an attempt that died
                    if len(boards) != 1 or None in boards:
                        out.left[str(part)] = f"rows of {len(boards)} boards"
                        continue
                    board = boards.pop()
                    if table == "results":
                        board_of_job.update((j, board) for j in jobs)
                    by_board.setdefault(board, {t: [] for t in COMPACTED})[table].append((part.stem, part, data))
            for board in sorted(by_board):
                out.passes.append(self._write_pass(board, by_board[board]))
                out.jobs += len(by_board[board]["results"])
            # the pass is committed: its staged parts go, results last (a job counts as done throughout)
            moved = [path for board in sorted(by_board) for t in COMPACTED for _, path, _ in by_board[board][t]]
            for part in sorted(leftovers + moved, key=lambda p: p.parent.name == "results"):
                part.unlink(missing_ok=True)
                out.parts += 1
            for table in COMPACTED:
                if (self.path / table).is_dir():
                    _fsync_dir(self.path / table)
            if job_ids is None:
                self._copy_board_tables(out)
            if out.passes or out.parts or out.copied:
                self.journal({"state": "compacted", "passes": [str(p) for p in out.passes], "jobs": out.jobs,
                              "parts_removed": out.parts, "copied": out.copied, "left": out.left,
                              "t_wall": time.time()})
            return out

    def try_compact(self, job_ids: Iterable[str] | None = None) -> Compaction | None:
        """``compact``, for those that must not fail for it (a sweep, a report): a failure is journalled as
        ``compact_failed`` and the parts stay where they are, readable, for the next compaction."""
        try:
            return self.compact(job_ids)
        except (StoreError, OSError) as exc:
            self.journal({"state": "compact_failed", "error": type(exc).__name__, "message": str(exc),
                          "t_wall": time.time()})
            return None

    def _write_pass(self, board: str, parts: dict[str, list[tuple[str, Path, pa.Table | None]]]) -> Path:
        names = {t: sorted(name for name, _, _ in parts[t]) for t in COMPACTED}
        digest = hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()[:20]
        file_name = f"part-{digest}.parquet"
        committed = self.dataset_dir("results", board)
        # files of a pass that never committed (a crash between its files) are not read by anyone: remove them
        for table in COMPACTED:
            folder = self.dataset_dir(table, board)
            for f in sorted(folder.glob(".*.tmp")) + sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
                if f.suffix == ".tmp" or (f.name != file_name and not (committed / f.name).exists()):
                    f.unlink()
        record = {"board": board, "parts": names, "jobs": sorted(j for _, _, d in parts["results"]
                                                                  for j in d.column("job_id").to_pylist()),
                  "files": [t for t in COMPACTED if parts[t]], "compacted_wall": time.time()}
        for table in COMPACTED:
            dest = self.dataset_dir(table, board) / file_name
            if not parts[table] or dest.exists():
                continue
            schema = pa.schema([f for f in TABLES[table] if f.name not in PARTITION_KEYS])
            if table == "results":
                schema = schema.with_metadata({PASS_KEY: json.dumps(record).encode()})
            ordered = sorted(parts[table], key=lambda p: p[0])
            _create_parquet((data if data is not None else read_part(path, table) for _, path, data in ordered),
                            schema, dest)
        return committed / file_name

    def _copy_board_tables(self, out: Compaction) -> None:
        """The run's idle and membw parts, copied into the dataset (the run's own stay what it reads)."""
        for table in COPIED:
            for part in self._staged(table):
                try:
                    data = pq.read_table(part)
                except (pa.ArrowException, OSError) as exc:
                    raise StoreError(f"{part}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None
                names = data.column_names
                boards = set(data.column("board").to_pylist()) if "board" in names else set()
                runs = set(data.column("run_id").to_pylist()) if "run_id" in names else set()
                if len(boards) != 1 or None in boards or runs != {self.run_id}:
                    out.left[str(part)] = "not one board of this run"
                    continue
                dest = self.dataset_dir(table, boards.pop()) / part.name
                if dest.exists():
                    continue
                kept = data.drop_columns([k for k in PARTITION_KEYS if k in names])
                if _create_parquet([kept], kept.schema, dest):
                    out.copied += 1


class Store:
    def __init__(self, root: Path):
        self.root = Path(root)

    def create_run(self, run_id: str, meta: dict[str, Any]) -> RunDir:
        if not RUN_ID_PATTERN.match(run_id) or run_id in RESERVED:
            raise StoreError(f"invalid run id {run_id!r}" + (" (a table of the store's dataset)"
                                                            if run_id in RESERVED else ""))
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
        if not RUN_ID_PATTERN.match(run_id) or run_id in RESERVED or not (path / "run.json").exists():
            known = ", ".join(self.run_ids()[-5:]) or "none"
            raise StoreError(f"no run {run_id!r} in {self.root} (latest: {known})")
        return RunDir(path)

    def run_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name not in RESERVED and (p / "run.json").exists())

    def runs(self) -> Iterable[RunDir]:
        return (RunDir(self.root / r) for r in self.run_ids())
