"""The report from the store alone: every section, every figure, checked in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import StoreError
from orchestrator.report.html import write_report
from orchestrator.results.store import Store
from tests.analysis.synthetic import constant_power, make_run, result_row
from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def full_run(store: Store, run_id: str = "r1", scale: float = 1.0):
    """Two SoCs, float32+int8, meter + rails with idle, membw, a co-execution row."""
    rows, power, lat = [], {}, {}
    specs = [("b1", "socA", "big", "big"), ("b1", "socA", "little", "little"), ("b2", "socB", "a73", "big")]
    for board, soc, comp, cls in specs:
        for dtype, ips in (("float32", 100.0), ("int8", 250.0)):
            jid = f"{board}-{comp}-{dtype}"
            rows.append(result_row(run_id, jid, board=board, soc=soc, component=comp, component_class=cls,
                                   dtype=dtype, model_file=f"tiny_cnn_{dtype}.tflite",
                                   throughput_ips=ips * scale * (2 if board == "b2" else 1)))
            lat[jid] = np.full(50, 1000.0 / ips)
            if board == "b1":
                power[jid] = constant_power(9.5, 12.5, 6.0)
            else:
                power[jid] = pd.concat([constant_power(9.5, 12.5, 2.0, "sensor", "a73"),
                                        constant_power(9.5, 12.5, 1.0, "sensor", "mem")])
    rows.append(result_row(run_id, "b1-coexec", component="big+little", dtype="float32", throughput_ips=120.0 * scale,
                           coexec_members=["big", "little"], coexec_share_pct=[75.0, 25.0]))
    rows.append(result_row(run_id, "b1-bad", component="little", component_class="little", dtype="float32",
                           verdict="INVALID",
                           reasons=["min_count not met: 3 < 10"], throughput_ips=1.0))
    idle = [{"board": "b1", "source": "meter", "rail": "board", "mean_power_w": 2.0},
            {"board": "b2", "source": "sensor", "rail": "a73", "mean_power_w": 0.5},
            {"board": "b2", "source": "sensor", "rail": "mem", "mean_power_w": 0.25}]
    membw = [{"board": "b1", "component": "big", "kernel": "triad", "gb_per_s": 4.0},
             {"board": "b2", "component": "a73", "kernel": "copy", "gb_per_s": 8.0}]
    return make_run(store, run_id, rows, latencies=lat, power=power, idle=idle, membw=membw)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.tables = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src"))
        if tag == "table":
            self.tables.append(a.get("id") or a.get("class"))


EXPECTED_TABLES = {"throughput-b1", "throughput-b2", "energy-table", "rails-table", "roofline-table",
                   "roofline-missing", "quantization-table", "coexec-table", "cross-soc-table", "baseline-table",
                   "deployment-table", "pareto-table"}
EXPECTED_IMGS = {"throughput-b1.png", "throughput-b2.png", "efficiency-b1.png", "efficiency-b2.png",
                 "roofline-socA.png", "roofline-socB.png", "cross-soc.png", "coexec-b1.png", "pareto-b1.png",
                 "pareto-b2.png"}


@pytest.fixture
def report(tmp_path):
    store = Store(tmp_path / "runs")
    full_run(store, "r0", scale=0.5)
    run = full_run(store, "r1")
    index = write_report(run, tmp_path / "reports" / "r1", baseline=store.open_run("r0"), power_cap_w=5.0)
    return index


def test_report_content(report):
    html = report.read_text()
    page = _Page()
    page.feed(html)
    assert EXPECTED_TABLES <= set(page.tables), set(page.tables)
    assert set(page.imgs) == EXPECTED_IMGS
    for img in page.imgs:
        assert (report.parent / img).stat().st_size > 1000
    # energy: b1 meter 6 W - 2 W idle = 4 W; b2 rails 3 W - 0.75 W = 2.25 W
    assert "board_supply" in html and "rails" in html and "4.000" in html and "2.250" in html
    assert "min_count not met: 3 &lt; 10" in html
    assert "not enough data" in html  # little has no peak
    assert "2.50" in html  # int8/float32 throughput ratio
    assert "1.20" in html  # co-execution gain over the best single component
    assert "big 75%, little 25%" in html  # its composition: each member's share of the frames
    assert "2.000" in html  # baseline geometric mean (r1 is twice r0)
    # cross-SoC: which way (release years of socA/socB unknown: by name), per model, both means (b2 is 2x b1)
    assert "socA / socB" in html and "by name (release year of socA and socB not known" in html
    assert "geometric mean</th><th>arithmetic mean" in html and "Tiny CNN 0.50" in html
    md = (report.parent / "summary.md").read_text()
    assert "| Tiny CNN | float32 |" in md and "## Energy" in md
    assert "| socA / socB | by name" in md and "| big | float32 |" in md and "| 0.50 | 0.50 |" in md
    # deployment advisor: b1 float32 has big and little (100 img/s, 4 W active: 40 mJ/image, 6 W drawn, both on
    # the front) and big+little (120 img/s, no power data: fastest, off the front); nothing draws <= 5 W
    assert 'id="deployment"' in html and "at most <b>5.00 W</b>" in html
    assert ("| b1 | Tiny CNN | float32 | 3 | 2 | **big+little** 120.0 img/s, – mJ/image, – W | **big** 100.0 img/s, "
            "40.00 mJ/image, 6.00 W | none within 5 W (lowest draw: big at 6 W) |") in md
    csv = pd.read_csv(report.parent / "results.csv")
    assert len(csv) == 8 and "min_count not met" in " ".join(csv["reasons"].fillna(""))


def test_report_in_headless_chromium(report, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is needed to check the report as a browser renders it: apt-get install -y chromium",
                    pytrace=False)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'prof'}",
           "--virtual-time-budget=5000", "--dump-dom", report.as_uri()]
    # the page reports, from inside the browser, every image that failed to load
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text().replace(
        "</body>", "<script>window.addEventListener('load', () => { const bad = [...document.images]"
        ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'));"
        " document.body.setAttribute('data-broken', bad.join(',') || 'none');"
        " document.body.setAttribute('data-images', document.images.length); });</script></body>"))
    cmd[-1] = probe.as_uri()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-broken="none"' in dom, re.findall(r'data-broken="[^"]*"', dom)
    assert f'data-images="{len(EXPECTED_IMGS)}"' in dom
    page = _Page()
    page.feed(dom)
    assert EXPECTED_TABLES <= set(page.tables)


def test_report_cli_bad_input_leaves_store_untouched(tmp_path):
    store = Store(tmp_path / "runs")
    full_run(store, "r1")

    def snapshot():
        return sorted((str(p.relative_to(store.root)), p.stat().st_size, p.stat().st_mtime_ns)
                      for p in store.root.rglob("*"))

    def report_cli(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator", "report", *args, "--store", str(store.root),
                               "--reports", str(tmp_path / "rep")], capture_output=True, text=True, cwd=REPO)

    before = snapshot()
    proc = report_cli("nope")
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
    proc = report_cli("r1", "--baseline", "missing")
    assert proc.returncode == 2 and "no run 'missing'" in proc.stderr
    (store.root / "r1" / "power" / "b1-big-int8.parquet").write_bytes(b"not parquet")
    before = snapshot()
    proc = report_cli("r1")
    assert proc.returncode == 2 and "b1-big-int8.parquet: corrupt Parquet file" in proc.stderr
    assert snapshot() == before
    with pytest.raises(StoreError):
        write_report(store.open_run("r1"), tmp_path / "x")
