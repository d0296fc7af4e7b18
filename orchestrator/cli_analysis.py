"""Analysis commands of the `orchestrator` CLI: report, model info, import, compare, regress, compact.

``register(app)`` attaches them to the main typer app (``report`` replaces the
plain one of cli.py with the version that accepts ``--baseline``).

Exit codes as in cli.py, plus: ``regress`` exits 1 when a series regressed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

STORE = typer.Option(Path("runs"), "--store", help="Results store (one folder per run).")
REPORTS = typer.Option(Path("reports"), "--reports", help="Where reports/<run-id>/ are written.")

SOC_ORDER = typer.Option(
    None, "--soc-order", metavar="SOC,SOC...",
    help="How cross-SoC ratios are taken: the first named SoC over the next (e.g. kirin970,exynos5422). "
         "Default: newer / older SoC where the release years are known, else by name.")


def _positive_watts(value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    from orchestrator.analysis.deployment import check_power_cap  # numpy and pandas: only when a cap is given

    try:
        return check_power_cap(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


POWER_CAP = typer.Option(
    None, "--power-cap-w", metavar="WATTS", callback=_positive_watts,
    help="Deployment advisor: also recommend the fastest configuration whose mean power is at most this.")


def _soc_order(text: Optional[str]) -> Optional[list[str]]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    return names or None


def _run_cross_soc(run, soc_order: Optional[list[str]]):
    """Per-model cross-SoC ratios and their summary for a stored run (mean over the VALID repeats of each
    series, as in the report); ``soc_order`` else the order recorded in the run, else newer / older."""
    import pandas as pd

    from orchestrator.analysis.compare import cross_soc, cross_soc_summary
    from orchestrator.analysis.metrics import throughput_table
    from orchestrator.analysis.series import SOURCE_COLUMNS
    from orchestrator.analysis.tables import read_columns

    results = read_columns(run, "results", list(dict.fromkeys(SOURCE_COLUMNS + ["job_id", "verdict",
                                                                                 "throughput_ips", "emulated"])))
    table = throughput_table(results, pd.DataFrame({"job_id": pd.Series(dtype=str),
                                                    "latency_ms": pd.Series(dtype=float)}))
    pairs = cross_soc(table, soc_order or run.meta.get("soc_order"))
    return pairs, cross_soc_summary(pairs)


def _print_cross_soc(summary) -> None:
    """One block per SoC pair (its direction and why), one line per class/dtype/frequency: the per-model
    ratios, then the geometric and arithmetic means; a line with an emulated side says so."""
    from orchestrator.analysis.emulation import NOT_PERFORMANCE
    from orchestrator.analysis.series import freq_label

    if summary.empty:
        out.print("cross-SoC: no component class measured on two SoCs", highlight=False)
        return
    for (direction, basis), g in summary.groupby(["direction", "basis"], sort=False):
        out.print(f"cross-SoC throughput ratio {direction} ({basis}):", markup=False, highlight=False)
        for c in g.to_dict("records"):
            freq = freq_label(c["freq_setting"])
            models = ", ".join(f"{m['model']} {m['ratio']:.2f}" for m in c["per_model"])
            out.print(f"  {c['component_class']:<6} {c['dtype']}{' @ ' + freq if freq else ''}: {models}; "
                      f"geometric mean {c['geomean_ratio']:.2f}, arithmetic mean {c['mean_ratio']:.2f} "
                      f"({c['models']} models)"
                      + (f" [{c['emulated']}: {NOT_PERFORMANCE}]" if c.get("emulated") else ""),
                      markup=False, highlight=False)


def _summary_json(summary) -> list[dict]:
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in summary.to_dict("records")]


model_app = typer.Typer(no_args_is_help=True, help="Inspect .tflite models (FLOPs, bytes, intensity).")


def report(
    run_id: str = typer.Argument(..., help="Run id (a folder of the store)."),
    store: Path = STORE,
    reports: Path = REPORTS,
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Run id to compare throughput against."),
    soc_order: Optional[str] = SOC_ORDER,
    power_cap_w: Optional[float] = POWER_CAP,
    compact: bool = typer.Option(False, "--compact",
                                 help="First move the run's finished jobs into the store's dataset (what "
                                      "`orchestrator compact RUN` does; a sweep's background report does it). "
                                      "Never on a run that a sweep is writing."),
) -> None:
    """Regenerate reports/<RUN>/{index.html, results.csv, summary.md} from the store alone."""
    from orchestrator.report.html import write_report
    from orchestrator.results.store import Store

    st = Store(store)
    run = st.open_run(run_id)
    if compact:
        run.try_compact()  # a failure is journalled; the report reads the parts where they are
    base = st.open_run(baseline) if baseline else None
    index = write_report(run, reports / run.run_id, baseline=base, soc_order=_soc_order(soc_order),
                         power_cap_w=power_cap_w)
    out.print(f"report: {index}", highlight=False)


def compare_cmd(
    run_id: str = typer.Argument(..., help="Run id (a folder of the store)."),
    store: Path = STORE,
    soc_order: Optional[str] = SOC_ORDER,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Cross-SoC throughput ratios of a run: per component class, per model, with geometric and arithmetic means."""
    from orchestrator.results.store import Store

    run = Store(store).open_run(run_id)
    _, summary = _run_cross_soc(run, _soc_order(soc_order))
    if as_json:
        out.print_json(json.dumps({"run_id": run.run_id, "cross_soc": _summary_json(summary)}))
        return
    _print_cross_soc(summary)


@model_app.command("info")
def model_info(
    file: Path = typer.Argument(..., help="A .tflite file."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    per_layer: bool = typer.Option(False, "--per-layer", help="One row per operator."),
) -> None:
    """MACs, FLOPs, parameters, weight and activation bytes and operational intensity of a model."""
    from orchestrator.analysis.model_info import analyze

    info = analyze(file)
    if as_json:
        out.print_json(json.dumps(info.to_dict(per_layer=per_layer)))
        return
    if per_layer:
        table = Table(title=str(file))
        for col in ("#", "op", "output", "MACs", "FLOPs", "params", "weight B", "activation B", "FLOP/B"):
            table.add_column(col, justify="left" if col in ("op", "output") else "right")
        for layer in info.layers:
            table.add_row(str(layer.index), layer.op, "x".join(map(str, layer.output_shape)), f"{layer.macs:,}",
                          f"{layer.flops:,}", f"{layer.params:,}", f"{layer.weight_bytes:,}",
                          f"{layer.activation_bytes:,}", f"{layer.intensity_flop_per_byte:.2f}")
        out.print(table)
    totals = Table(title=f"{file} (totals)")
    totals.add_column("quantity")
    totals.add_column("value", justify="right")
    for key, value in info.totals().items():
        totals.add_row(key, f"{value:,.2f}" if isinstance(value, float) else f"{value:,}")
    out.print(totals)


def import_results(
    csv_file: Path = typer.Argument(..., help="CSV: soc, board, component, model, dtype, throughput "
                                              "[, power_w, component_class]."),
    store: Path = STORE,
    source: str = typer.Option("", "--source", help="Where the figures come from (paper, lab notebook...)."),
    soc_order: Optional[str] = SOC_ORDER,
) -> None:
    """Store throughput figures measured elsewhere as a new run (validated first; nothing written on error),
    then print its cross-SoC ratios. A component without a class is classed by its name (A7: little,
    A15: big, T628: gpu, NPU: npu...); --soc-order is recorded for the run's report."""
    from orchestrator.analysis.import_csv import import_csv
    from orchestrator.results.store import Store

    run = import_csv(Store(store), csv_file, source=source, soc_order=_soc_order(soc_order))
    out.print(f"imported {len(run.meta['jobs'])} rows as run {run.run_id} ({run.path})", highlight=False)
    _print_cross_soc(_run_cross_soc(run, None)[1])


def compact_cmd(
    run_ids: Optional[list[str]] = typer.Argument(None, help="Runs to compact (default: every run)."),
    store: Path = STORE,
) -> None:
    """Move the per-job Parquet parts of finished jobs into the store's dataset (runs/<table>/run_id=.../board=...,
    one file per table per board): what a sweep does at the end of each board's share, for runs written before
    the dataset existed or a compaction that failed. Safe to repeat or interrupt; never run it on a run that a
    sweep is writing."""
    from orchestrator.results.store import Store

    st = Store(store)
    runs = [st.open_run(r) for r in run_ids] if run_ids else list(st.runs())
    for run in runs:
        done = run.compact()
        out.print(f"{run.run_id}: {done.jobs} jobs in {len(done.passes)} board files, {done.parts} parts removed, "
                  f"{done.copied} idle/membw parts copied"
                  + (f", {len(done.left)} parts left as they are" if done.left else ""),
                  highlight=False, markup=False)
        for part, why in sorted(done.left.items()):
            out.print(f"  left: {part}: {why}", highlight=False, markup=False)


def regress_cmd(
    run_id: str = typer.Argument(..., help="Run to judge."),
    baseline: str = typer.Option("last-good", "--baseline", help="Run id, or last-good."),
    store: Path = STORE,
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML (one testcase per series)."),
    min_effect: float = typer.Option(0.03, "--min-effect", min=0.0,
                                     help="Smallest relative change of a series' mean per-job throughput "
                                          "(or median latency) that counts."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0, max=1.0,
                                help="Significance level of the permutation test on the jobs."),
    min_repeats: int = typer.Option(3, "--min-repeats", min=1,
                                    help="Fewer valid jobs on a side: 'not enough repeats'."),
    baseline_runs: int = typer.Option(5, "--baseline-runs", min=1,
                                      help="Pool the jobs of the baseline and up to N-1 earlier good runs."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Compare the jobs (repeats) of RUN with those of its baseline runs; exit 1 when a series regressed."""
    from dataclasses import asdict

    from orchestrator.analysis.regress import (
        RegressSettings,
        last_good,
        regress,
        save_verdicts,
        write_junit,
    )
    from orchestrator.results.store import Store

    settings = RegressSettings(alpha=alpha, min_effect=min_effect, min_repeats=min_repeats,
                               baseline_runs=baseline_runs)
    st = Store(store)
    run = st.open_run(run_id)
    base_id = last_good(st, run.run_id) if baseline == "last-good" else baseline
    base = st.open_run(base_id)
    verdicts = regress(st, run, base, **asdict(settings))
    save_verdicts(run, base.run_id, verdicts, settings)
    if junit:
        write_junit(junit, run.run_id, base.run_id, verdicts)
    if as_json:
        out.print_json(json.dumps({"run_id": run.run_id, "baseline": base.run_id, "settings": asdict(settings),
                                   "series": [asdict(v) for v in verdicts]}, default=str))
    else:  # one line per series: readable in a nightly's log at any width, and grep-able
        out.print(f"{run.run_id} vs {base.run_id} (min effect {min_effect * 100:g} %, alpha {alpha:g}, "
                  f"at least {min_repeats} repeats, baseline runs up to {baseline_runs})",
                  markup=False, highlight=False)
        for v in verdicts:
            cp = v.change_point
            where = f" [change point at {cp['run_id']}: {cp['shift'] * 100:+.1f} %]" if cp else ""
            out.print(f"{v.verdict:<18} {v.name}: {v.reason}{where}", markup=False, highlight=False)
    if any(v.verdict == "regressed" for v in verdicts):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach the analysis commands to the main app (called once from cli.py)."""
    app.registered_commands[:] = [c for c in app.registered_commands
                                  if (c.name or getattr(c.callback, "__name__", "")) != "report"]
    app.command("report")(report)
    app.command("import")(import_results)
    app.command("compare")(compare_cmd)
    app.command("regress")(regress_cmd)
    app.command("compact")(compact_cmd)
    app.add_typer(model_app, name="model")
