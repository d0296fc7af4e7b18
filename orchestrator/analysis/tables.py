"""Read only the columns an analysis needs from a run's Parquet tables.

``RunDir.read_table`` reads every column of every file; the analysis reads
projections (so that a store with 10^8 power samples fits in memory) and maps
a corrupt or unreadable file to :class:`~orchestrator.errors.StoreError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import StoreError
from orchestrator.results.schema import TABLES
from orchestrator.results.store import RunDir

__all__ = ["table_files", "read_columns", "iter_files"]


def table_files(run: RunDir, table: str) -> list[Path]:
    folder = run.path / table
    return sorted(folder.glob("*.parquet")) if folder.exists() else []


def _read(path: Path, table: str, columns: Sequence[str]) -> pa.Table:
    schema = TABLES[table]
    try:
        # the full schema: columns added after a file was written read as nulls
        return pq.read_table(path, columns=list(columns), schema=schema)
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise StoreError(f"{path}: corrupt Parquet file ({str(exc).splitlines()[0]})") from None


def iter_files(run: RunDir, table: str, columns: Sequence[str]) -> Iterator[pa.Table]:
    """One Arrow table per stored file, with only ``columns``."""
    for path in table_files(run, table):
        yield _read(path, table, columns)


def read_columns(run: RunDir, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``columns`` of every file of ``table`` as one DataFrame (an empty frame with those columns if none)."""
    schema = TABLES[table]
    columns = list(columns) if columns is not None else list(schema.names)
    parts = list(iter_files(run, table, columns))
    if not parts:
        return pa.schema([schema.field(c) for c in columns]).empty_table().to_pandas()
    return pa.concat_tables(parts).to_pandas()
