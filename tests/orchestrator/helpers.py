"""In-memory labs and zoos for planner and store tests."""

from __future__ import annotations

from orchestrator.config.inventory import Board, Component, Lab
from orchestrator.zoo.manifest import Manifest, ModelEntry


def lab(boards: int = 1, comps: tuple[str, ...] = ("cpu0", "cpu1")) -> Lab:
    return Lab(
        source="inv.yml",
        boards=[
            Board(
                name=f"b{i}",
                soc="host_cpu",
                groups=("g_even",) if i % 2 == 0 else ("g_odd",),
                connection="local",
                work_dir=f"/tmp/b{i}",
                components=[Component(name=c, cpus=[n]) for n, c in enumerate(comps)],
            )
            for i in range(boards)
        ],
    )


def manifest(names: tuple[str, ...] = ("mobilenet_v1", "squeezenet")) -> Manifest:
    entries = [
        ModelEntry(
            name=n, display_name=n.title(), dtype=d, file=f"{n}_{d}.tflite", sha256="0" * 64, bytes=1,
            input_shape=[1, 224, 224, 3], input_dtype=d, params=1, macs=1,
        )
        for n in names
        for d in ("float32", "int8")
    ]
    return Manifest(builder_hash="x", tensorflow_version="test", weights="random", models=entries)
