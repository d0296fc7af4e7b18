"""Reading projections of a run's tables: schema types, columns newer than a file, corrupt files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.analysis.tables import read_columns
from orchestrator.errors import StoreError
from orchestrator.results.schema import TABLES
from orchestrator.results.store import Store


@pytest.fixture
def run(tmp_path):
    return Store(tmp_path / "runs").create_run("r1", {})


def test_a_column_newer_than_the_file_reads_as_nulls_of_its_type(run):
    schema = TABLES["membw"]
    older = pa.schema([f for f in schema if f.name != "gb_per_s"])  # written before gb_per_s existed
    row = {f.name: None for f in older}
    row.update(run_id="r1", board="b0", component="big", kernel="triad")
    (run.path / "membw").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist([row], schema=older), run.path / "membw" / "b0-big.parquet")
    run.write_table("membw", "b1-big", [{**{f.name: None for f in schema}, "run_id": "r1", "board": "b1",
                                         "component": "big", "kernel": "triad", "gb_per_s": 3.5}])
    frame = read_columns(run, "membw", ["board", "kernel", "gb_per_s"])
    assert frame.board.tolist() == ["b0", "b1"] and frame.kernel.tolist() == ["triad", "triad"]
    assert frame.gb_per_s.isna().tolist() == [True, False] and frame.gb_per_s[1] == 3.5
    assert frame.gb_per_s.dtype == "float64"


def test_a_corrupt_file_is_named(run):
    (run.path / "membw").mkdir(exist_ok=True)
    (run.path / "membw" / "b0-big.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(StoreError, match="b0-big.parquet: corrupt Parquet file"):
        read_columns(run, "membw", ["board"])
