"""The report of a run with a simulated component: its own banner, its timings marked simulated."""

from __future__ import annotations

from orchestrator.analysis.emulation import timing_source
from orchestrator.report.html import write_report
from orchestrator.results.store import Store
from tests.report.test_emulated_report import _rows, _section, two_boards


def test_a_simulated_component_gets_a_simulated_banner_and_marks(tmp_path):
    store = Store(tmp_path / "runs")
    sim = timing_source(None, ["a73"])
    run = two_boards(store, "r1", emulated=sim)
    html = write_report(run, tmp_path / "reports" / "r1").read_text()
    banner = _section(html, 'id="simulated-banner"', "</p>")
    assert "<b>b2</b> (simulated inference (modelled latency: a73))" in banner and "b1" not in banner
    assert "modelled latency" in banner and 'id="emulated-banner"' not in html
    b2_cells = _rows(html, "throughput-b2")
    assert b2_cells and all(r.count('class="emu" title="simulated') == 2 for r in b2_cells)
    assert "emulated" not in _section(html, "<h3>b2", "</h3>")
    md = (tmp_path / "reports" / "r1" / "summary.md").read_text()
    assert "**Simulated inference: timings are not performance figures.**" in md and "Emulated userland" not in md
