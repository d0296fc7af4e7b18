"""A virtual XU3 sysfs tree with its simulated kernel, for the platform-control tests."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Tuple

from orchestrator.virtual.board_sim import BoardSimulator, FixedActivity
from orchestrator.virtual.sysfs import build_tree

POLICY4 = "devices/system/cpu/cpufreq/policy4"
POLICY0 = "devices/system/cpu/cpufreq/policy0"
GPU = "class/devfreq/11800000.gpu"
WATCHED = {
    POLICY4: ("scaling_governor", "scaling_min_freq", "scaling_max_freq"),
    POLICY0: ("scaling_governor", "scaling_min_freq", "scaling_max_freq"),
    GPU: ("governor", "min_freq", "max_freq"),
}


@contextmanager
def xu3(root: Path) -> Iterator[BoardSimulator]:
    layout = build_tree(root, "odroid_xu3")
    with BoardSimulator(root, layout, FixedActivity({"a15": 0.5, "a7": 0.1}), tick_s=0.02,
                        max_lifetime_s=120.0) as sim:
        yield sim


def snapshot(root: Path) -> Dict[Tuple[str, str], str]:
    """The control files the agent may write, as they read now."""
    return {(d, f): (root / d / f).read_text().strip() for d, files in WATCHED.items() for f in files}
