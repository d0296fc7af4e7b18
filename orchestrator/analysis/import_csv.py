"""Import throughput figures measured elsewhere as a new run of the store.

CSV columns (header line required, any order, extra columns are an error):

==================  =========  ==============================================
column              required   meaning
==================  =========  ==============================================
soc                 yes        SoC type, e.g. ``kirin970``
board               yes        board name
component           yes        component name, e.g. ``a73``
model               yes        model name as in the zoo, e.g. ``mobilenet_v1``
dtype               yes        ``float32`` or ``int8`` (any non-empty text)
throughput          yes        images per second, a number > 0
power_w             no         mean board power during the measurement (W), >= 0
component_class     no         big, little, cpu, gpu or npu (for cross-SoC comparison)
==================  =========  ==============================================

The whole file is validated first; any problem raises ``ConfigError`` naming
``file:line: column`` and nothing is written. The rows become the results
table of a new run (provenance ``git_revision="import"``,
``experiment="import"``, verdict VALID with the reason "imported"), and
``run.json`` records the source text and the file's sha256.
"""

from __future__ import annotations

import csv
import hashlib
import math
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.errors import ConfigError
from orchestrator.results.schema import RESULTS, SCHEMA_VERSION
from orchestrator.results.store import RunDir, Store

__all__ = ["REQUIRED", "OPTIONAL", "read_import_csv", "import_csv"]

REQUIRED = ("soc", "board", "component", "model", "dtype", "throughput")
OPTIONAL = ("power_w", "component_class")
CLASSES = ("big", "little", "cpu", "gpu", "npu")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_import_csv(path: Path) -> list[dict[str, Any]]:
    """Validated rows (each with its ``line``); ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the import file ({exc})") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ConfigError(f"{path}:1: empty file; expected a header with {', '.join(REQUIRED)}") from None
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    problems = []
    if missing:
        problems.append(f"{path}:1: missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    if unknown:
        problems.append(f"{path}:1: unknown column(s) {', '.join(unknown)} (optional: {', '.join(OPTIONAL)})")
    if problems:
        raise ConfigError(f"{path}: invalid import file", problems)
    rows = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            problems.append(f"{path}:{line}: expected {len(header)} fields, found {len(fields)}")
            continue
        row = {h: f.strip() for h, f in zip(header, fields)}
        for col in REQUIRED:
            if not row[col]:
                problems.append(f"{path}:{line}: {col}: empty")
        thr = _number(row["throughput"])
        if row["throughput"] and thr is None:
            problems.append(f"{path}:{line}: throughput: not a number: {row['throughput']!r}")
        elif thr is not None and thr <= 0:
            problems.append(f"{path}:{line}: throughput: must be > 0 images/s, got {row['throughput']}")
        power = None
        if row.get("power_w"):
            power = _number(row["power_w"])
            if power is None or power < 0:
                problems.append(f"{path}:{line}: power_w: must be a number >= 0, got {row['power_w']!r}")
        cls = row.get("component_class") or None
        if cls is not None and cls not in CLASSES:
            problems.append(f"{path}:{line}: component_class: must be one of {', '.join(CLASSES)}, got {cls!r}")
        rows.append({**row, "throughput": thr, "power_w": power, "component_class": cls, "line": line})
    if not rows and not problems:
        problems.append(f"{path}: no data rows")
    if problems:
        raise ConfigError(f"{path}: invalid import file", problems)
    return rows


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def import_csv(store: Store, path: Path, source: str | None = None, run_id: str | None = None) -> RunDir:
    """Validate ``path`` and store it as a new run; returns the run."""
    path = Path(path)
    rows = read_import_csv(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    now = time.gmtime()
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', now)}-import-{digest[:4]}"
    boards: dict[str, dict[str, Any]] = {}
    for r in rows:
        b = boards.setdefault(r["board"], {"name": r["board"], "soc": r["soc"], "components": []})
        if r["component"] not in {c["name"] for c in b["components"]}:
            b["components"].append({"name": r["component"], "class": r["component_class"] or "cpu"})
    records = []
    for i, r in enumerate(rows):
        rec: dict[str, Any] = {name: None for name in RESULTS.names}
        job_id = _safe(f"{i:04d}-{r['board']}-{r['component']}-{r['model']}-{r['dtype']}")
        rec.update({
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "job_id": job_id, "experiment": "import",
            "board": r["board"], "soc": r["soc"], "component": r["component"],
            "component_class": r["component_class"] or "cpu", "cpus": [], "model": r["model"],
            "model_display": r["model"], "dtype": r["dtype"], "repeat": 1, "git_revision": "import",
            "throughput_ips": r["throughput"], "verdict": "VALID",
            "reasons": [f"imported from {path.name} line {r['line']}; measurement rules not checked"],
        })
        if r["power_w"] is not None:
            rec.update({"meter_kind": "import", "meter_measures": "imported", "mean_power_w": r["power_w"],
                        "energy_per_image_j": r["power_w"] / r["throughput"]})
        records.append(rec)
    run = store.create_run(run_id, {
        "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "finished_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "git_revision": "import", "experiment": "import", "imported": True,
        "import_source": source or "", "import_file": str(path), "import_sha256": digest,
        "experiments_file": None, "inventory_file": None, "zoo_dir": None,
        "zoo_builder_hash": "", "zoo_weights": "imported figures (models not analysed here)",
        "boards": boards, "jobs": [rec["job_id"] for rec in records], "status": "finished",
    })
    run.write_table("results", "import", pd.DataFrame(records, columns=RESULTS.names))
    return run
