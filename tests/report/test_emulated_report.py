"""The report of a run with a board whose userland was emulated: a banner naming the board and its emulation,
every timing of that board marked, an advisor finding; a run stored with schema 3 still reports, as real."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.analysis.run_analysis import analyze_run
from orchestrator.report.html import write_report
from orchestrator.results.schema import RESULTS
from orchestrator.results.store import Store
from tests.analysis.synthetic import make_run, result_row

QEMU = "qemu-user arm64 (cortex-a73), Debian 12"
MARK = 'class="emu"'


def two_boards(store: Store, run_id: str, emulated: str | None = QEMU):
    """b1 (socA, real) and b2 (socB, its userland ``emulated``): tiny CNN as float32 and int8 on one component
    each, two repeats."""
    rows, lat = [], {}
    for board, soc, comp, emu in (("b1", "socA", "big", None), ("b2", "socB", "a73", emulated)):
        for dtype, ips in (("float32", 100.0), ("int8", 250.0)):
            for repeat in (1, 2):
                jid = f"{board}-{dtype}-r{repeat}"
                rows.append(result_row(run_id, jid, board=board, soc=soc, component=comp, dtype=dtype,
                                       model_file=f"tiny_cnn_{dtype}.tflite", repeat=repeat, emulated=emu,
                                       throughput_ips=ips / (20 if emu else 1)))
                lat[jid] = np.full(20, 1000.0 / ips)
    return make_run(store, run_id, rows, latencies=lat)


def _section(html: str, start: str, end: str) -> str:
    return html[html.index(start):html.index(end, html.index(start))]


def _rows(html: str, table_id: str) -> list[str]:
    """The body rows of one table of the page."""
    body = _section(html, f'id="{table_id}"', "</table>")
    return re.findall(r"<tr>.*?</tr>", body, flags=re.S)[1:]  # after the header


def test_banner_marks_and_advice(tmp_path):
    store = Store(tmp_path / "runs")
    run = two_boards(store, "r1")
    index = write_report(run, tmp_path / "reports" / "r1")
    html = index.read_text()
    banner = _section(html, 'id="emulated-banner"', "</p>")
    assert "<b>b2</b> (qemu-user arm64 (cortex-a73), Debian 12)" in banner and "b1" not in banner
    assert "not performance figures" in banner
    # every cell of b2's throughput table is marked (img/s and latencies), none of b1's
    b2_cells = _rows(html, "throughput-b2")
    assert len(b2_cells) == 2 and all(r.count(MARK) == 2 for r in b2_cells)
    assert MARK not in _section(html, 'id="throughput-b1"', "</table>")
    assert "emulated userland: " + QEMU in _section(html, "<h3>b2", "</h3>")
    # the jobs table: window, img/s, p50 and p99 of b2's jobs
    jobs = _section(html, 'class="jobs"', "</table>")
    for row in re.findall(r"<tr><td class=\"l\"><code>.*?</tr>", jobs, flags=re.S):
        assert row.count(MARK) == (4 if "<code>b2-" in row else 0), row
    # ratios made of b2's timings: int8/float32 on b2, the cross-SoC line (socA / socB by name)
    quant = {re.search(r'<td class="l">(b\d)</td>', r).group(1): r for r in _rows(html, "quantization-table")}
    assert quant["b2"].count(MARK) == 3 and MARK not in quant["b1"]  # float32 and int8 img/s, their ratio
    cross = _rows(html, "cross-soc-table")  # float32 and int8
    assert len(cross) == 2
    assert all(f"socB emulated ({QEMU}): timings are not performance figures" in r and MARK in r for r in cross)
    assert "Throughput of every model on every component of b2 " + '<span class="emu"' in html
    # the advisor, once
    assert html.count("timings of board b2 are from an emulated userland") == 1
    assert f"from an emulated userland ({QEMU}): not performance figures; " in html
    # summary.md: the banner, b2's cells, the cross-SoC line
    md = (index.parent / "summary.md").read_text()
    assert "**Emulated userland: timings are not performance figures.** The timings of b2 (" + QEMU in md
    b1_table = _section(md, "### b1", "###")
    b2_table = md[md.index("### b2"):md.index("## Energy")]
    assert "emu." not in b1_table and b2_table.count(" emu. |") == 2
    assert f"emulated userland: {QEMU}" in b2_table.splitlines()[0]
    assert f"| socA / socB; socB emulated ({QEMU}) |" in md
    # results.csv carries the column
    csv = pd.read_csv(index.parent / "results.csv")
    assert set(csv.loc[csv.board == "b2", "emulated"]) == {QEMU} and csv.loc[csv.board == "b1", "emulated"].isna().all()


def test_a_run_of_real_boards_shows_nothing_of_it(tmp_path):
    run = two_boards(Store(tmp_path / "runs"), "r1", emulated=None)
    html = write_report(run, tmp_path / "reports" / "r1").read_text()
    assert MARK not in html and 'id="emulated-banner"' not in html and "emulated userland (" not in html
    assert "emu." not in (tmp_path / "reports" / "r1" / "summary.md").read_text()


def test_emulated_against_a_real_baseline_is_not_compared(tmp_path):
    store = Store(tmp_path / "runs")
    two_boards(store, "r0", emulated=None)
    run = two_boards(store, "r1")
    html = write_report(run, tmp_path / "reports" / "r1", baseline=store.open_run("r0")).read_text()
    rows = _rows(html, "baseline-table")
    b2 = [r for r in rows if '<td class="l">b2' in r]
    b1 = [r for r in rows if '<td class="l">b1' in r]
    assert len(b2) == 2 and all("not compared: emulated in this run, a real board in the baseline" in r for r in b2)
    assert all("<td>–</td>" in r for r in b2)  # no ratio
    assert all("1.000" in r and MARK not in r for r in b1)
    assert "Geometric mean of throughput ratios (this run / baseline): <b>1.000</b>" in html  # b1's only


def _as_schema3(source, run) -> None:
    """The results of ``source`` written into ``run`` as a controller of schema 3 wrote them: no ``emulated``
    column; their latencies as they are."""
    schema3 = pa.schema([f for f in RESULTS if f.name != "emulated"])
    for part in (source.path / "results").glob("*.parquet"):
        t = pq.read_table(part).drop_columns(["emulated"])
        n = t.num_rows
        t = t.set_column(t.schema.get_field_index("schema_version"), "schema_version",
                         pa.array([3] * n, pa.int16())).set_column(t.schema.get_field_index("run_id"), "run_id",
                                                                    pa.array([run.run_id] * n))
        pq.write_table(t.cast(schema3), run.path / "results" / part.name)
    for part in (source.path / "latencies").glob("*.parquet"):
        (run.path / "latencies" / part.name).write_bytes(part.read_bytes())


def test_a_run_stored_with_schema_3_still_reports_as_real_boards(tmp_path):
    store = Store(tmp_path / "runs")
    run = make_run(store, "old", [])
    _as_schema3(two_boards(store, "new", emulated=None), run)
    assert "emulated" not in pq.read_schema(next((run.path / "results").glob("*.parquet"))).names
    stored = run.read_table("results")
    assert len(stored) == 8 and stored["emulated"].isna().all() and set(stored["schema_version"]) == {3}
    assert analyze_run(run).emulated == {}
    index = write_report(run, tmp_path / "reports" / "old")
    html = index.read_text()
    assert "throughput-b1" in html and "throughput-b2" in html and MARK not in html
    assert 'id="emulated-banner"' not in html
    csv = pd.read_csv(index.parent / "results.csv")
    assert len(csv) == 8 and csv["emulated"].isna().all()
