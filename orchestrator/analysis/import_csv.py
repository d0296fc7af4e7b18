"""Import throughput figures measured elsewhere as a new run of the store.

CSV columns (header line required, any order, extra columns are an error):

==================  =========  ==============================================
column              required   meaning
==================  =========  ==============================================
soc                 yes        SoC type, e.g. ``kirin970``
board               yes        board name
component           yes        component name, e.g. ``A73``, ``Cortex-A73``, ``Mali-G72``, ``NPU``
model               yes        model name as in the zoo, e.g. ``mobilenet_v1``
dtype               yes        ``float32`` or ``int8`` (any non-empty text)
throughput          yes        images per second, a number > 0
power_w             no         mean board power during the measurement (W), >= 0
component_class     no         big, little, cpu, gpu or npu (for cross-SoC comparison)
==================  =========  ==============================================

``component_class``, where a row leaves it out (no column, or an empty cell),
is inferred from the component's name by
:func:`orchestrator.analysis.component_names.infer_class` (``A7`` -> little,
``A15`` -> big, ``T628`` -> gpu, ``NPU`` -> npu); where given, it wins. A
name whose class is not known, one component with two classes, and a SoC
with two components of one class that only inference put there (``A15`` and
``A17`` both big) are errors naming the rows: say the class in the column.

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

from orchestrator.analysis.compare import order_socs
from orchestrator.analysis.component_names import CLASSES, core_key, infer_class
from orchestrator.errors import ConfigError
from orchestrator.results.schema import RESULTS, SCHEMA_VERSION
from orchestrator.results.store import RunDir, Store

__all__ = ["REQUIRED", "OPTIONAL", "read_import_csv", "import_csv"]

REQUIRED = ("soc", "board", "component", "model", "dtype", "throughput")
OPTIONAL = ("power_w", "component_class")


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
        given = (row.get("component_class") or "").lower() or None
        if given is not None and given not in CLASSES:
            problems.append(f"{path}:{line}: component_class: must be one of {', '.join(CLASSES)}, "
                            f"got {row['component_class']!r}")
        inferred = infer_class(row["component"]) if row["component"] else None
        bad_class = given is not None and given not in CLASSES
        rows.append({**row, "throughput": thr, "power_w": power, "line": line, "bad_class": bad_class,
                     "component_class": None if bad_class else given or inferred, "class_given": given is not None})
    if not rows and not problems:
        problems.append(f"{path}: no data rows")
    problems += _class_problems(path, rows, has_column="component_class" in header)
    if problems:
        raise ConfigError(f"{path}: invalid import file", problems)
    return rows


def _lines(lines: list[int]) -> str:
    return f"line {lines[0]}" if len(lines) == 1 else "lines " + ", ".join(map(str, lines))


def _class_problems(path: Path, rows: list[dict[str, Any]], has_column: bool) -> list[str]:
    """Every component must have one class, and on one SoC no two components may share a class inferred
    from their names (an explicit class in the column is taken as the user means it)."""
    problems = []
    fix = (f"fill in its component_class ({', '.join(CLASSES)})" if has_column
           else f"add a component_class column ({', '.join(CLASSES)})")
    # (soc, component) -> its rows; a component is one core type, however the table spells it
    comps: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["soc"] and r["component"] and not r["bad_class"]:
            comps.setdefault((r["soc"], r["component"]), []).append(r)
    per_soc: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for (soc, name), rs in comps.items():
        unknown = [r["line"] for r in rs if r["component_class"] is None]
        if unknown:
            problems.append(f"{path}:{unknown[0]}: component: {name!r} ({soc}, {_lines(unknown)}) is not a core or "
                            f"accelerator name whose class is known (see orchestrator/analysis/component_names.py); "
                            f"{fix}")
        classes: dict[str, list[int]] = {}
        for r in rs:
            if r["component_class"] is not None:
                classes.setdefault(r["component_class"], []).append(r["line"])
        if len(classes) > 1:
            said = "; ".join(f"{c!r} on {_lines(ls)}" for c, ls in classes.items())
            problems.append(f"{path}:{rs[0]['line']}: component_class: {name!r} of {soc} has two classes: {said}")
            continue
        if classes:
            cls = next(iter(classes))
            per_soc.setdefault((soc, cls), {}).setdefault(core_key(name), []).extend(rs)
    for (soc, cls), cores in per_soc.items():
        members = [r for rs in cores.values() for r in rs]
        if len(cores) < 2 or all(r["class_given"] for r in members):
            continue  # one core type; or the user's column says so (the fastest then stands for the class)
        listed = ", ".join(  # one entry per core type, however the table spells it ('A15' = 'Cortex-A15')
            " = ".join(repr(n) for n in dict.fromkeys(r["component"] for r in rs))
            + f" ({_lines(sorted(r['line'] for r in rs))}"
            + ("" if all(r["class_given"] for r in rs) else ", inferred from its name") + ")"
            for rs in cores.values())
        how = ("give them different classes in the component_class column" if has_column
               else "add a component_class column that gives them different classes")
        problems.append(f"{path}:{min(r['line'] for r in members)}: component_class: SoC {soc} would have "
                        f"{len(cores)} components of class {cls!r} that a cross-SoC comparison cannot tell apart: "
                        f"{listed}; {how} ({', '.join(CLASSES)}), or give each the same class on purpose (the "
                        f"fastest then stands for the class)")
    return problems


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def import_csv(store: Store, path: Path, source: str | None = None, run_id: str | None = None,
               soc_order: list[str] | None = None) -> RunDir:
    """Validate ``path`` and store it as a new run; returns the run.

    ``soc_order`` (SoC names of the file, e.g. ``["kirin970", "exynos5422"]``) is how its cross-SoC ratios are
    taken (first / second); it is recorded in ``run.json`` so that the report takes them the same way."""
    path = Path(path)
    rows = read_import_csv(path)
    if soc_order:
        order_socs([r["soc"] for r in rows], soc_order)  # a name that is not a SoC of the file: ConfigError
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    now = time.gmtime()
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%SZ', now)}-import-{digest[:4]}"
    boards: dict[str, dict[str, Any]] = {}
    for r in rows:
        b = boards.setdefault(r["board"], {"name": r["board"], "soc": r["soc"], "components": []})
        if r["component"] not in {c["name"] for c in b["components"]}:
            b["components"].append({"name": r["component"], "class": r["component_class"]})
    records = []
    for i, r in enumerate(rows):
        rec: dict[str, Any] = {name: None for name in RESULTS.names}
        job_id = _safe(f"{i:04d}-{r['board']}-{r['component']}-{r['model']}-{r['dtype']}")
        rec.update({
            "schema_version": SCHEMA_VERSION, "run_id": run_id, "job_id": job_id, "experiment": "import",
            "board": r["board"], "soc": r["soc"], "component": r["component"],
            "component_class": r["component_class"], "cpus": [], "model": r["model"],
            "model_display": r["model"], "dtype": r["dtype"], "repeat": 1, "git_revision": "import",
            "throughput_ips": r["throughput"], "verdict": "VALID",
            "emulated": None,  # measured elsewhere: nothing says an emulator ran it (schema 4)
            "reasons": [f"imported from {path.name} line {r['line']}; measurement rules not checked"]
            + ([] if r["class_given"] else
               [f"component_class {r['component_class']} inferred from the name {r['component']!r}"]),
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
        **({"soc_order": [s.strip() for s in soc_order if s.strip()]} if soc_order else {}),
    })
    run.write_table("results", "import", pd.DataFrame(records, columns=RESULTS.names))
    return run
