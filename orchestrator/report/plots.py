"""Figures of the report (matplotlib, written as PNG next to index.html)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def throughput_bars(table: pd.DataFrame, board: str, path: Path) -> Path:
    """Grouped bars: models on the x axis, one bar per component x dtype, log y."""
    data = table[table["board"] == board]
    models = list(dict.fromkeys(data["model_display"]))
    series = list(dict.fromkeys(zip(data["component"], data["dtype"])))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models)), 4.2), dpi=110)
    x = np.arange(len(models))
    for i, (component, dtype) in enumerate(series):
        sel = data[(data["component"] == component) & (data["dtype"] == dtype)].set_index("model_display")
        values = [float(sel["throughput_ips"].get(m, np.nan)) for m in models]
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=f"{component} {dtype}")
    ax.set_xticks(x, models, rotation=0)
    ax.set_yscale("log")
    ax.set_ylabel("throughput (images/s, log)")
    ax.set_title(f"{board}: throughput per component")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize="small", ncol=min(4, len(series)), loc="upper center", bbox_to_anchor=(0.5, -0.1),
              frameon=False)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
