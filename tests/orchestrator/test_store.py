"""Results store: Parquet schema, append-only, clear errors on corruption."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest

from orchestrator.errors import StoreError
from orchestrator.results.schema import LATENCIES, RESULTS, SCHEMA_VERSION
from orchestrator.results.store import Store


def a_row(run_id: str, job_id: str) -> dict:
    row = {name: None for name in RESULTS.names}
    row.update(
        schema_version=SCHEMA_VERSION, run_id=run_id, job_id=job_id, board="b0", component="cpu0",
        cpus=[0], model="squeezenet", dtype="int8", model_sha256="ab" * 32, runtime_module="ai_edge_litert",
        runtime_version="2.3.0", git_revision="abc", verdict="VALID", reasons=[], count=10, throughput_ips=12.5,
        started_wall=pd.Timestamp("2026-11-25T12:00:00Z"),
    )
    return row


def test_results_round_trip_with_exact_schema(tmp_path):
    run = Store(tmp_path).create_run("r1", {"note": "x"})
    path = run.write_table("results", "j1", [a_row("r1", "j1")])
    assert pq.read_schema(path).remove_metadata().equals(RESULTS)
    df = run.read_table("results")
    assert df.loc[0, "throughput_ips"] == 12.5
    assert list(df.loc[0, "cpus"]) == [0]
    assert run.done_job_ids() == {"j1"}


def test_provenance_columns_exist():
    for col in ("run_id", "board", "component", "model_sha256", "dtype", "runtime_version", "git_revision"):
        assert col in RESULTS.names


def test_row_must_match_schema(tmp_path):
    run = Store(tmp_path).create_run("r1", {})
    row = a_row("r1", "j1")
    del row["verdict"]
    row["verdikt"] = "VALID"
    with pytest.raises(StoreError, match=r"missing \['verdict'\], unexpected \['verdikt'\]"):
        run.write_table("results", "j1", [row])
    assert run.done_job_ids() == set()


def test_nothing_is_overwritten(tmp_path):
    run = Store(tmp_path).create_run("r1", {})
    run.write_table("results", "j1", [a_row("r1", "j1")])
    with pytest.raises(StoreError, match="never overwritten"):
        run.write_table("results", "j1", [a_row("r1", "j1")])
    with pytest.raises(StoreError, match="already exists"):
        Store(tmp_path).create_run("r1", {})


def test_latencies_from_frame(tmp_path):
    run = Store(tmp_path).create_run("r1", {})
    frame = pd.DataFrame({"run_id": "r1", "job_id": "j1", "index": [0, 1], "start_mono_ns": [10, 30],
                          "end_mono_ns": [20, 45]})
    frame["latency_ms"] = (frame.end_mono_ns - frame.start_mono_ns) / 1e6
    path = run.write_table("latencies", "j1", frame)
    assert pq.read_schema(path).remove_metadata().equals(LATENCIES)


def test_corrupt_parquet_is_named(tmp_path):
    run = Store(tmp_path).create_run("r1", {})
    (run.path / "results" / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(StoreError, match=r"bad\.parquet: corrupt Parquet file"):
        run.read_table("results")


def test_unknown_run(tmp_path):
    Store(tmp_path).create_run("r1", {})
    with pytest.raises(StoreError, match=r"no run 'nope' .* \(latest: r1\)"):
        Store(tmp_path).open_run("nope")
    with pytest.raises(StoreError):
        Store(tmp_path).open_run("../etc")


def test_journal_tolerates_a_torn_last_line(tmp_path):
    run = Store(tmp_path).create_run("r1", {})
    run.journal({"job_id": "j1", "state": "planned"})
    with open(run.path / "journal.jsonl", "a") as fh:
        fh.write('{"job_id": "j1", "sta')
    assert run.journal_records() == [{"job_id": "j1", "state": "planned"}]
