"""Figures of the report (matplotlib, written as PNG next to index.html)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from orchestrator.analysis.emulation import emulation_column, label_of  # noqa: E402
from orchestrator.analysis.series import SERIES_KEYS, freq_label  # noqa: E402


def _plain_log_ticks(*axes) -> None:
    """Log axes labelled 20, 50, 100 ... instead of mathtext powers (slow to lay out, hard to read);
    minor ticks get labels only when the axis spans less than two decades."""
    for axis in axes:
        axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def _grouped_bars(data: pd.DataFrame, value: str, ylabel: str, title: str, path: Path) -> Path:
    """Grouped bars: models on the x axis, one bar per component x dtype, log y, legend below.

    Laid out once by the constrained layout engine (``bbox_inches="tight"`` would draw every
    figure twice: the report of a big store draws dozens)."""
    models = list(dict.fromkeys(data["model_label"]))
    series = list(dict.fromkeys(zip(data["component_label"], data["dtype"])))
    width = 0.8 / max(1, len(series))
    rows = -(-len(series) // 4)  # legend rows below the axes
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models)), 4.2 + 0.25 * rows), dpi=110, layout="constrained")
    x = np.arange(len(models))
    for i, (component, dtype) in enumerate(series):
        sel = data[(data["component_label"] == component) & (data["dtype"] == dtype)].set_index("model_label")
        values = [float(sel[value].get(m, np.nan)) for m in models]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=f"{component} {dtype}")
    ax.set_xticks(x, models)
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.legend(fontsize="small", ncol=min(4, max(1, len(series))), loc="outside lower center", frameon=False)
    fig.savefig(path)
    plt.close(fig)
    return path


def throughput_bars(table: pd.DataFrame, board: str, path: Path) -> Path:
    """Throughput of every model on every component x dtype of one board (the title says when the board's
    userland was emulated: the figure may leave the report)."""
    data = table[table["board"] == board]
    label = label_of([t for t in emulation_column(data) if t])
    what = {"emulated": "emulated userland", "simulated": "simulated inference"}.get(label, label)
    return _grouped_bars(data, "throughput_ips", "throughput (images/s, log)",
                         f"{board}: throughput per component" + (f"\n({what}: not performance figures)"
                                                                 if label else ""), path)


def efficiency_bars(energy: pd.DataFrame, board: str, path: Path) -> Path:
    """Images per joule (active power) of every model on every component of one board."""
    data = energy[(energy["board"] == board)].dropna(subset=["images_per_j"])
    return _grouped_bars(data, "images_per_j", "images per joule (active power, log)",
                         f"{board}: energy efficiency", path)


def coexec_share_bars(coexec: pd.DataFrame, shares: pd.DataFrame, board: str, path: Path) -> Path:
    """Stacked horizontal bars: each co-execution configuration's throughput split by the members' shares
    of the frames, with the best single component's throughput marked."""
    rows = coexec[coexec["board"] == board].reset_index(drop=True)
    sh = shares[shares["board"] == board]
    fig, ax = plt.subplots(figsize=(7.5, 1.2 + 0.55 * len(rows)), dpi=110, layout="constrained")
    colors: dict[str, str] = {}
    labelled: set[str] = set()
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = []
    for i, rec in rows.iterrows():
        left = 0.0
        part = sh.merge(pd.DataFrame([rec])[SERIES_KEYS], on=SERIES_KEYS)  # this configuration's members
        for member, pct in zip(part["member"], part["share_pct"]):
            color = colors.setdefault(member, palette[len(colors) % len(palette)])
            width = float(rec["throughput_ips"]) * pct / 100.0
            ax.barh(i, width, left=left, color=color, label=None if member in labelled else member)
            labelled.add(member)
            left += width
        if pd.notna(rec["best_single_ips"]):
            ax.plot([rec["best_single_ips"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=1.5)
        labels.append(f"{rec['model_label']} {rec['dtype']}\n{rec['component_label']}")
    ax.set_yticks(range(len(rows)), labels, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("throughput (images/s), split by each component's share of the frames; | best single")
    ax.set_title(f"{board}: co-execution composition")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.savefig(path)
    plt.close(fig)
    return path


def roofline_plot(roofs: pd.DataFrame, points: pd.DataFrame, soc: str, path: Path) -> Path:
    """Log-log roofline of the components of one SoC; markers: o memory-bound, ^ compute-bound."""
    r = roofs[(roofs["soc"] == soc)].dropna(subset=["peak_gflops", "bandwidth_gb_s"]).drop_duplicates("component")
    p = points[points["soc"] == soc]
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=110, layout="constrained")
    lo = min([0.1] + list(p["intensity_flop_per_byte"].dropna()))
    hi = max([1000.0] + list(p["intensity_flop_per_byte"].dropna() * 2))
    xs = np.logspace(np.log10(lo), np.log10(hi), 200)
    colors = {}
    for i, roof in enumerate(r.itertuples()):
        color = f"C{i % 10}"
        colors[roof.component] = color
        ax.plot(xs, np.minimum(roof.peak_gflops, roof.bandwidth_gb_s * xs), color=color,
                label=f"{roof.component}: {roof.peak_gflops:g} GFLOP/s, {roof.bandwidth_gb_s:g} GB/s")
        ax.axvline(roof.ridge_flop_per_byte, color=color, ls=":", lw=0.8)
    # one scatter per (component, bound): a big run has hundreds of points
    for (component, bound), group in p.groupby(["component", "bound"], sort=False, dropna=False):
        ax.scatter(group["intensity_flop_per_byte"], group["attained_gflops"], color=colors.get(component, "k"),
                   marker="o" if bound == "memory" else "^", zorder=3)
    if len(p) <= 24:  # beyond that the labels only hide each other (the table has every point)
        for pt in p.itertuples():
            where = "" if pt.component_label == pt.component else f" {pt.component_label}"
            ax.annotate(f"{pt.model_label} {pt.dtype}{where}", (pt.intensity_flop_per_byte, pt.attained_gflops),
                        fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax.xaxis, ax.yaxis)
    ax.set_xlabel("operational intensity (FLOP/byte)")
    ax.set_ylabel("attained GFLOP/s")
    ax.set_title(f"{soc}: roofline (o memory-bound, ^ compute-bound)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="x-small", loc="lower right")
    fig.savefig(path)
    plt.close(fig)
    return path


def ratio_heatmap(pairs: pd.DataFrame, path: Path) -> Path:
    """Cross-SoC throughput ratios: rows (soc_a/soc_b, class, dtype), columns models, log colour scale."""
    freq = pairs["freq_setting"].map(freq_label) if "freq_setting" in pairs else pd.Series("", index=pairs.index)
    data = pairs.assign(row=pairs["soc_a"] + " / " + pairs["soc_b"] + " · " + pairs["component_class"] + " · "
                        + pairs["dtype"] + freq.map(lambda f: f" @ {f}" if f else ""))
    grid = data.pivot_table(index="row", columns="model_display", values="ratio", aggfunc="first")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * grid.shape[1] + 3), 0.5 * grid.shape[0] + 2), dpi=110,
                           layout="constrained")
    values = np.log2(grid.to_numpy(dtype=float))
    lim = max(1.0, float(np.nanmax(np.abs(values)))) if np.isfinite(values).any() else 1.0
    im = ax.imshow(values, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="log2(throughput ratio)")
    ax.set_title("cross-SoC throughput ratio (each row: first SoC / second)")
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_plot(candidates: pd.DataFrame, picks: pd.DataFrame, board: str, path: Path, simulated: bool) -> Path:
    """Throughput against active energy per image of every candidate configuration of one board, a panel per
    model x dtype: the Pareto front joined by a line, the other candidates grey, the picks marked."""
    data = candidates[(candidates["board"] == board) & candidates["energy_per_image_j"].notna()]
    groups = list(dict.fromkeys(zip(data["model"], data["model_label"], data["dtype"])))
    cols = min(3, max(1, len(groups)))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, layout="constrained",
                             squeeze=False)
    marks = (("fastest", "*", "fastest"), ("efficient", "D", "most efficient"), ("capped", "v", "under the cap"))
    for ax, (model, label, dtype) in zip(axes.flat, groups):
        g = data[(data["model"] == model) & (data["model_label"] == label) & (data["dtype"] == dtype)]
        front = g[g["on_front"]].sort_values("energy_per_image_j")
        rest = g[~g["on_front"]]
        ax.scatter(rest["energy_per_image_j"] * 1e3, rest["throughput_ips"], color="0.6", s=18, zorder=2)
        ax.plot(front["energy_per_image_j"] * 1e3, front["throughput_ips"], "o-", color="C0", ms=5, zorder=3)
        for r in front.itertuples():
            ax.annotate(r.component_label, (r.energy_per_image_j * 1e3, r.throughput_ips), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        pick = picks[(picks["board"] == board) & (picks["model"] == model) & (picks["model_label"] == label)
                     & (picks["dtype"] == dtype)]
        for name, marker, what in marks:
            if pick.empty or pd.isna(pick[f"{name}_energy_per_image_j"].iloc[0]):
                continue
            ax.scatter(pick[f"{name}_energy_per_image_j"] * 1e3, pick[f"{name}_throughput_ips"], marker=marker,
                       s=90, facecolors="none", edgecolors="C3", zorder=4, label=what)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax.xaxis, ax.yaxis)
        ax.set_title(f"{label} {dtype}", fontsize="small")
        ax.set_xlabel("active energy per image (mJ" + (", simulated)" if simulated else ")"), fontsize="small")
        ax.set_ylabel("images/s", fontsize="small")
        ax.grid(which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small", loc="lower right")
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(f"{board}: throughput vs energy per image (line: Pareto front)")
    fig.savefig(path)
    plt.close(fig)
    return path
