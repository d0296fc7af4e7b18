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

from orchestrator.results.schema import TABLES
from orchestrator.results.store import RunDir, read_part

__all__ = ["read_columns", "iter_files"]


def _read(path: Path, table: str, columns: Sequence[str]) -> pa.Table:
    """``columns`` of one file, typed as the table's schema says; a column added to the schema after the
    file was written reads as nulls, ``run_id`` and ``board`` of a compacted file come from its path.
    (``ParquetFile`` rather than ``pq.read_table``: a run not yet compacted has thousands of one-row files,
    and the dataset machinery costs twice as much per file.)"""
    return read_part(path, table, columns)


def iter_files(run: RunDir, table: str, columns: Sequence[str], categorical: Sequence[str] = ()) -> Iterator[pa.Table]:
    """One Arrow table per stored file, with only ``columns``; ``categorical`` ones dictionary-encoded. The
    files are read before the first is given (``RunDir.read_files``: every row once, also while the run's
    background report compacts it)."""
    import pyarrow.compute as pc

    for data in run.read_files(table, lambda files: [_read(path, table, columns) for path in files]):
        for name in categorical:
            i = data.column_names.index(name)
            data = data.set_column(i, name, pc.dictionary_encode(data.column(i)))
        yield data


def read_columns(run: RunDir, table: str, columns: Sequence[str] | None = None,
                 categorical: Sequence[str] = ()) -> pd.DataFrame:
    """The ``columns`` of every file of ``table`` as one DataFrame (an empty frame with those columns if none).

    ``categorical`` columns come back as pandas categoricals: a column of 10^7 repeated job ids then costs
    an integer per row instead of a string.
    """
    schema = TABLES[table]
    columns = list(columns) if columns is not None else list(schema.names)
    parts = list(iter_files(run, table, columns, categorical))
    if not parts:
        return pa.schema([schema.field(c) for c in columns]).empty_table().to_pandas()
    return pa.concat_tables(parts).unify_dictionaries().to_pandas()


def export_csv(run: RunDir, table: str, path: Path, columns: Sequence[str], sort_by: Sequence[str] = ()) -> Path:
    """Write ``columns`` of a stored table as CSV through Arrow (list columns joined: ``,`` for numbers,
    ``; `` for text). Fast enough for 10^6 rows."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    schema = TABLES[table]
    parts = list(iter_files(run, table, columns))
    data = pa.concat_tables(parts) if parts else pa.schema([schema.field(c) for c in columns]).empty_table()
    for i, name in enumerate(data.column_names):
        col = data.column(name)
        if pa.types.is_list(col.type):
            sep = "; " if pa.types.is_string(col.type.value_type) else ","
            joined = pc.binary_join(col.cast(pa.list_(pa.string())), sep)
            data = data.set_column(i, name, joined)
    if sort_by and data.num_rows:
        data = data.sort_by([(k, "ascending") for k in sort_by])
    tmp = path.with_name("." + path.name + ".tmp")
    pacsv.write_csv(data, tmp)
    tmp.replace(path)
    return path
