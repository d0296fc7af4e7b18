"""The store as one Hive-partitioned dataset: compaction of per-job parts, crash safety, old-layout runs, and
readers from outside (pyarrow/pandas, DuckDB) reading every run in one call."""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from orchestrator.analysis.tables import read_columns
from orchestrator.errors import StoreError
from orchestrator.results import store as store_module
from orchestrator.results.store import Store
from tests.orchestrator.test_store import a_row


def write_job(run, job_id: str, board: str, n_lat: int = 3, n_power: int = 0) -> None:
    if n_power:
        run.write_table("power", job_id, [{"run_id": run.run_id, "job_id": job_id, "source": "meter",
                                           "rail": "board", "t_mono_s": float(i), "power_w": 2.0}
                                          for i in range(n_power)])
    run.write_table("latencies", job_id, [{"run_id": run.run_id, "job_id": job_id, "index": i,
                                           "start_mono_ns": i, "end_mono_ns": i + 1, "latency_ms": 1.0 + i}
                                          for i in range(n_lat)])
    run.write_table("results", job_id, [{**a_row(run.run_id, job_id), "board": board}])


def snapshot(run) -> dict[str, pd.DataFrame]:
    keys = {"results": ["job_id"], "latencies": ["job_id", "index"], "power": ["job_id", "t_mono_s"]}
    return {t: run.read_table(t).sort_values(k).reset_index(drop=True) for t, k in keys.items()}


def two_board_run(store: Store, run_id: str = "r1"):
    run = store.create_run(run_id, {})
    for i in range(4):
        write_job(run, f"j{i}", "b0" if i % 2 == 0 else "b1", n_power=2 if i < 2 else 0)
    return run


def test_a_board_share_compacts_into_one_file_per_table(tmp_path):
    store = Store(tmp_path / "runs")
    run = two_board_run(store)
    before, done = snapshot(run), run.done_job_ids()
    result = run.compact(["j0", "j2"])  # board b0's share
    assert result.jobs == 2 and len(result.passes) == 1
    b0 = [p.relative_to(store.root).parts[:3] for p in (store.root).glob("*/run_id=r1/board=b0/*.parquet")]
    assert sorted(b0) == [("latencies", "run_id=r1", "board=b0"), ("power", "run_id=r1", "board=b0"),
                          ("results", "run_id=r1", "board=b0")]
    assert sorted(p.stem for p in (run.path / "results").glob("*.parquet")) == ["j1", "j3"]  # b1: still staged
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    assert run.done_job_ids() == done
    run.compact()  # the rest: b1 and the idle/membw copies
    assert not list(run.path.glob("results/*.parquet")) and not list(run.path.glob("latencies/*.parquet"))
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    assert run.done_job_ids() == done
    # the analysis's projections get run_id and board of a compacted file from its path
    res = read_columns(run, "results", ["run_id", "job_id", "board"]).sort_values("job_id")
    assert res.run_id.tolist() == ["r1"] * 4 and res.board.tolist() == ["b0", "b1", "b0", "b1"]
    # again: nothing to do, nothing rewritten
    again = run.compact()
    assert again.passes == [] and again.parts == 0
    journal = [r for r in run.journal_records() if r.get("state") == "compacted"]
    assert [r["jobs"] for r in journal] == [2, 2]


def test_a_compacted_job_is_never_stored_again(tmp_path):
    run = two_board_run(Store(tmp_path / "runs"))
    run.compact()
    with pytest.raises(StoreError, match="already stored"):
        run.write_table("results", "j0", [a_row("r1", "j0")])


def test_a_crash_before_the_results_file_shows_every_job_once_and_the_next_compaction_finishes(tmp_path,
                                                                                             monkeypatch):
    run = two_board_run(Store(tmp_path / "runs"))
    before = snapshot(run)
    real = store_module._create_parquet

    def crash_at_results(tables, schema, dest):
        if dest.parts[-4] == "results":
            raise OSError("disk full")
        return real(tables, schema, dest)

    monkeypatch.setattr(store_module, "_create_parquet", crash_at_results)
    with pytest.raises(OSError, match="disk full"):
        run.compact()
    assert list(run.dataset_dir("latencies").glob("board=*/*.parquet"))  # a pass's files without its commit
    for table, frame in snapshot(run).items():  # ... are not read: the staged parts are
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    monkeypatch.setattr(store_module, "_create_parquet", real)
    assert run.compact().jobs == 4
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    assert len(list(run.dataset_dir("latencies").glob("board=*/*.parquet"))) == 2


def test_a_crash_after_the_commit_leaves_parts_that_are_read_once_and_removed_next_time(tmp_path):
    run = two_board_run(Store(tmp_path / "runs"))
    before = snapshot(run)
    kept = {p: p.read_bytes() for p in run.path.glob("*/j*.parquet")}
    run.compact()
    for path, data in kept.items():  # as if the compaction died before removing the staged parts
        path.write_bytes(data)
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    assert run.discard_incomplete("j0") == []  # done: not an incomplete attempt
    again = run.compact()
    assert again.passes == [] and again.parts == len(kept)
    assert not list(run.path.glob("*/j*.parquet"))


def test_old_layout_runs_read_as_before_and_migrate(tmp_path):
    """A run written before the dataset: staged parts only, plus an attempt that died (latencies, no result)."""
    store = Store(tmp_path / "runs")
    run = two_board_run(store)
    run.write_table("latencies", "dead", [{"run_id": "r1", "job_id": "dead", "index": 0, "start_mono_ns": 0,
                                           "end_mono_ns": 1, "latency_ms": 9.0}])
    assert len(run.read_table("latencies")) == 13 and run.done_job_ids() == {"j0", "j1", "j2", "j3"}
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["compact", "--store", str(store.root)])
    assert exit_.value.code in (0, None)
    assert len(run.read_table("latencies")) == 13  # the dead attempt's part stays staged, read as before
    assert [p.stem for p in run.path.glob("latencies/*.parquet")] == ["dead"]
    assert run.discard_incomplete("dead") and len(run.read_table("latencies")) == 12
    assert run.discard_incomplete("j1") == []


def test_pandas_pyarrow_and_duckdb_read_every_run_in_one_call(tmp_path):
    store = Store(tmp_path / "runs")
    two_board_run(store, "r1").compact()
    two_board_run(store, "r2").compact()
    df = pd.read_parquet(store.root / "results")
    assert len(df) == 8
    assert sorted(set(zip(df.run_id.astype(str), df.board.astype(str)))) == [
        ("r1", "b0"), ("r1", "b1"), ("r2", "b0"), ("r2", "b1")]
    lat = pq.read_table(store.root / "latencies", filters=[("run_id", "=", "r2"), ("board", "=", "b1")])
    assert lat.num_rows == 6 and set(lat.column("job_id").to_pylist()) == {"j1", "j3"}
    # the README's query
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT run_id, board, count(*) AS jobs, avg(throughput_ips) AS ips
        FROM read_parquet('{store.root}/results/*/*/*.parquet', hive_partitioning = true)
        GROUP BY run_id, board ORDER BY run_id, board""").fetchall()
    assert rows == [("r1", "b0", 2, 12.5), ("r1", "b1", 2, 12.5), ("r2", "b0", 2, 12.5), ("r2", "b1", 2, 12.5)]
    joined = con.execute(f"""
        SELECT r.board, count(*) FROM read_parquet('{store.root}/latencies/*/*/*.parquet', hive_partitioning = true) l
        JOIN read_parquet('{store.root}/results/*/*/*.parquet', hive_partitioning = true) r USING (run_id, job_id)
        WHERE run_id = 'r1' GROUP BY r.board ORDER BY r.board""").fetchall()
    assert joined == [("b0", 6), ("b1", 6)]


def test_table_names_are_not_run_ids(tmp_path):
    store = Store(tmp_path / "runs")
    with pytest.raises(StoreError, match="dataset"):
        store.create_run("results", {})
    two_board_run(store).compact()
    assert store.run_ids() == ["r1"]


def test_the_readme_duckdb_query_runs_on_a_store(tmp_path):
    from tests.conftest import REPO

    store = Store(tmp_path / "runs")
    two_board_run(store, "20261206T000000Z-0001").compact()
    old = two_board_run(store, "0042")  # an id DuckDB would read as a number unless told not to
    old.compact()
    readme = (REPO / "README.md").read_text()
    query = readme.split("```sql\n", 1)[1].split("```", 1)[0].replace("'runs/", f"'{store.root}/")
    rows = duckdb.connect().execute(query).fetchall()
    assert rows == [("0042", "b0", 2, 12.5, 6), ("0042", "b1", 2, 12.5, 6),
                    ("20261206T000000Z-0001", "b0", 2, 12.5, 6), ("20261206T000000Z-0001", "b1", 2, 12.5, 6)]


def test_boards_compact_side_by_side(tmp_path):
    """Each board's thread compacts its own share at once; every row is then read exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    store = Store(tmp_path / "runs")
    run = store.create_run("r1", {})
    shares = {f"b{b}": [f"b{b}-j{k}" for k in range(6)] for b in range(4)}
    for board, jobs in shares.items():
        for job in jobs:
            write_job(run, job, board, n_power=3)
    before = snapshot(run)
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda jobs: store.open_run("r1").compact(jobs), shares.values()))
    assert [d.jobs for d in done] == [6] * 4 and not list(run.path.glob("*/*.parquet"))
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)
    assert len(pd.read_parquet(store.root / "power")) == 4 * 6 * 3


def test_parts_of_several_jobs_compact_when_of_one_board_and_stay_when_not(tmp_path):
    run = two_board_run(Store(tmp_path / "runs"))
    lat = [{"run_id": "r1", "job_id": j, "index": 10, "start_mono_ns": 0, "end_mono_ns": 1, "latency_ms": 5.0}
           for j in ("j0", "j2")]  # both board b0
    run.write_table("latencies", "extra-b0", lat)
    run.write_table("latencies", "extra-both", [{**lat[0], "index": 11}, {**lat[0], "job_id": "j1", "index": 11}])
    before = snapshot(run)
    done = run.compact()
    assert list(done.left) == [str(run.path / "latencies" / "extra-both.parquet")]
    assert done.left[str(run.path / "latencies" / "extra-both.parquet")] == "rows of 2 boards"
    for table, frame in snapshot(run).items():
        pd.testing.assert_frame_equal(frame, before[table], check_like=True)


@pytest.fixture
def compaction_after_listing(monkeypatch):
    """Every read of the run meets a compaction (the background report's process) between its listing of the
    files and its reading of them, once: the staged parts it listed are gone by then."""
    listed = store_module.RunDir.table_files
    calls: list[str] = []

    def listing_then_compaction(self, table):
        files = listed(self, table)
        if not calls:
            self.compact()
        calls.append(table)
        return files

    monkeypatch.setattr(store_module.RunDir, "table_files", listing_then_compaction)
    return calls


def test_a_read_that_meets_a_compaction_lists_again_and_reads_every_row_once(tmp_path, compaction_after_listing):
    store = Store(tmp_path / "runs")
    run = two_board_run(store)
    results = run.read_table("results")
    assert sorted(results.job_id) == ["j0", "j1", "j2", "j3"] and compaction_after_listing == ["results", "results"]
    assert not list(run.path.glob("results/*.parquet"))  # it did move them


@pytest.mark.parametrize("table", ["latencies", "power"])
def test_the_analysis_reads_meet_a_compaction_the_same_way(tmp_path, compaction_after_listing, table):
    from orchestrator.analysis.energy import run_energy

    store = Store(tmp_path / "runs")
    run = two_board_run(store)
    expected = {"latencies": 12, "power": 4}[table]
    assert len(read_columns(run, table, ["job_id"])) == expected
    assert compaction_after_listing == [table, table]
    run_energy(run)  # reads power over the now compacted files


def test_a_part_that_is_there_and_unreadable_is_corrupt_not_moved(tmp_path):
    store = Store(tmp_path / "runs")
    run = two_board_run(store)
    (run.path / "results" / "j1.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="j1.parquet: corrupt Parquet file"):
        run.read_table("results")
