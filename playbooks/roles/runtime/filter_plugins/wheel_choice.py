"""Which runtime wheels a board gets: its architecture, Python and glibc against the role's wheel table.

Pure functions (no Ansible objects), so that the tests call them directly; the role uses them through
the ``runtime_wheel_choice``, ``runtime_platform_tags`` and ``runtime_version_in`` filters.

A row of the table (``runtime_wheel_table_extra + runtime_wheel_table``; the first row that matches wins)::

    name: armv7l-distro-numpy          # shown in messages and recorded in the runtime facts
    arch: armv7l                       # `uname -m`, or a list of them
    python: ">=3.8,<3.12"              # optional: range of the board's Python, compared as major.minor
    glibc: ">=2.34"                    # optional: range of the board's glibc
    requirements: [tflite-runtime==2.14.0]
    system_site_packages: true         # optional: venv --system-site-packages; numpy is the distro's
    distro_numpy: ">=1.23.2,<2"        # optional (with system_site_packages): the distro numpy it needs
    refuse: "no binary path: ..."      # instead of requirements: the board cannot be provisioned

A range is comma-separated clauses, each an operator (>=, >, <=, <, ==, !=) and a version; every clause
must hold. Requirements carry no environment markers (``; python_version < ...``): pip evaluates
markers against the controller's Python, not the board's.

``socfarm_wheelhouse`` (a folder of wheels on the controller) is used before the table: when it holds
a runtime wheel (ai-edge-litert, else tflite-runtime) this board can install, those of its wheels that
fit the board are copied and installed with ``--no-index``; the table is not consulted, so a board
the table refuses can still be provisioned.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Optional

#: oldest glibc of the manylinux tags looked for (manylinux2014 = manylinux_2_17)
MIN_GLIBC_MINOR = 17
#: runtime distributions a wheelhouse may provide, preferred first
RUNTIMES = ("ai-edge-litert", "tflite-runtime")
_OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")
_ROW_KEYS = {"name", "arch", "python", "glibc", "requirements", "system_site_packages", "distro_numpy", "refuse"}


class TableError(ValueError):
    """The wheel table itself is malformed (a lab's row): names the row and the field."""


def _version_tuple(text: str) -> tuple[int, ...]:
    match = re.match(r"^\s*(\d+(?:\.\d+)*)", str(text))
    if not match:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(x) for x in match.group(1).split("."))


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def version_in(version: str, spec: Optional[str]) -> bool:
    """``version`` ("3.11.2", "2.36", "1.24.2") satisfies every clause of ``spec`` (">=3.8,<3.12");
    an empty spec matches everything. Versions compare as integer tuples padded with zeros, so
    "3.11.2" < "3.12" and "3.11.2" == "3.11" is false (compare on major.minor with that in mind)."""
    if spec is None or not str(spec).strip():
        return True
    have = _version_tuple(version)
    for clause in str(spec).split(","):
        match = _CLAUSE.match(clause)
        if not match:
            raise ValueError(f"bad version range {spec!r}: clause {clause.strip()!r} is not <op><version>")
        a, b = _pad(have, _version_tuple(match.group(2)))
        if not _OPS[match.group(1)](a, b):
            return False
    return True


def _minor(version: str) -> str:
    parts = _version_tuple(version)
    if len(parts) < 2:
        raise ValueError(f"not a major.minor version: {version!r}")
    return f"{parts[0]}.{parts[1]}"


def platform_tags(arch: str, glibc: str) -> list[str]:
    """pip ``--platform`` tags a board with this glibc can install, newest first: manylinux_2_<N>_<arch>
    for N from the board's glibc minor down to 17, then manylinux2014_<arch> (the same as 2_17)."""
    major, minor = _version_tuple(_minor(glibc))[:2]
    if major != 2:
        raise ValueError(f"unexpected glibc version {glibc!r}")
    tags = [f"manylinux_2_{n}_{arch}" for n in range(minor, MIN_GLIBC_MINOR - 1, -1)]
    return tags + [f"manylinux2014_{arch}"] if minor >= MIN_GLIBC_MINOR else []


def _check_row(row: Any, index: int) -> str:
    label = f"row {index + 1}"
    if not isinstance(row, dict):
        raise TableError(f"wheel table {label}: expected a mapping, got {type(row).__name__}")
    label = f"row {index + 1} ({row.get('name', 'unnamed')})"
    unknown = sorted(set(row) - _ROW_KEYS)
    if unknown:
        raise TableError(f"wheel table {label}: unknown field(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_ROW_KEYS))})")
    if not row.get("arch"):
        raise TableError(f"wheel table {label}: no arch")
    if bool(row.get("refuse")) == bool(row.get("requirements")):
        raise TableError(f"wheel table {label}: give either requirements or refuse")
    for key in ("python", "glibc", "distro_numpy"):
        if row.get(key):
            try:
                version_in("0", row[key])
            except ValueError as exc:
                raise TableError(f"wheel table {label}: {key}: {exc}") from None
    reqs = row.get("requirements") or []
    if isinstance(reqs, str) or not all(isinstance(r, str) for r in reqs):
        raise TableError(f"wheel table {label}: requirements must be a list of strings")
    marked = [r for r in reqs if ";" in r]
    if marked:
        raise TableError(f"wheel table {label}: requirement {marked[0]!r} has an environment marker; pip "
                         "evaluates markers against the controller's Python, not the board's: make a row per "
                         "Python range instead")
    return label


def _matches(row: dict, arch: str, python: str, glibc: str) -> bool:
    arches = row["arch"] if isinstance(row["arch"], (list, tuple)) else [row["arch"]]
    return arch in arches and version_in(python, row.get("python")) and version_in(glibc, row.get("glibc"))


# -- wheelhouse ---------------------------------------------------------------------------------------------

def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_wheel(filename: str) -> Optional[dict]:
    """name, version and tag sets of a wheel file name (PEP 427), or None if it is not one."""
    base = os.path.basename(filename)
    if not base.endswith(".whl"):
        return None
    parts = base[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    return {"file": base, "name": _normalize(parts[0]), "version": parts[1],
            "python": set(parts[-3].split(".")), "abi": set(parts[-2].split(".")),
            "platform": set(parts[-1].split("."))}


def wheel_fits(wheel: dict, arch: str, python: str, glibc: str) -> bool:
    """Whether pip on the board (CPython ``python``, ``arch``, ``glibc``) would install this wheel."""
    major, minor = _version_tuple(_minor(python))[:2]
    cp = f"cp{major}{minor}"
    pythons = {cp, f"py{major}", f"py{major}{minor}"}
    abi3 = {f"cp{major}{m}" for m in range(2, minor + 1)}  # cp3Y-abi3 for every Y up to the board's
    if not (wheel["python"] & pythons or (wheel["abi"] & {"abi3"} and wheel["python"] & abi3)):
        return False
    if not wheel["abi"] & {cp, "abi3", "none"}:
        return False
    if "any" in wheel["platform"] or f"linux_{arch}" in wheel["platform"]:
        return True
    board = _version_tuple(_minor(glibc))[1]
    return any(n is not None and n <= board for n in (_manylinux_minor(t, arch) for t in wheel["platform"]))


_LEGACY = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}  # PEP 600's aliases


def _manylinux_minor(tag: str, arch: str) -> Optional[int]:
    """The glibc minor a manylinux tag for ``arch`` needs (manylinux_2_34_armv7l: 34), else None."""
    match = re.match(r"^manylinux_2_(\d+)_(.+)$", tag)
    if match:
        return int(match.group(1)) if match.group(2) == arch else None
    legacy, _, tag_arch = tag.partition("_")
    return _LEGACY.get(legacy) if tag_arch == arch else None


def _wheelhouse_plan(files: list[str], arch: str, python: str, glibc: str) -> Optional[dict]:
    wheels = [w for w in (parse_wheel(f) for f in files) if w is not None]
    fitting = [w for w in wheels if wheel_fits(w, arch, python, glibc)]
    for runtime in RUNTIMES:
        found = [w for w in fitting if w["name"] == runtime]
        if not found:
            continue
        best = max(found, key=lambda w: _version_tuple(w["version"]))
        has_numpy = any(w["name"] == "numpy" for w in fitting)
        return {
            "requirements": [f"{runtime}=={best['version']}"],
            "system_site_packages": not has_numpy,  # no numpy wheel for the board: the distro's
            "distro_numpy": "",
            "files": sorted(w["file"] for w in fitting),
        }
    return None


# -- the choice ----------------------------------------------------------------------------------------------

def wheel_choice(table: Iterable[Any], arch: str, python: str, glibc: str,
                 wheelhouse: str = "", wheelhouse_files: Iterable[str] = ()) -> dict:
    """What to install on a board (``arch`` as `uname -m` says, ``python`` and ``glibc`` versions).

    Returns ``refused`` (bool) and ``message`` (why, when refused), ``source`` ("wheelhouse" or "pypi"),
    ``row`` (the matching row's name), ``requirements``, ``system_site_packages``, ``distro_numpy``
    (range, "" for any), ``platforms`` (pip --platform tags), ``download_args`` (everything after
    ``pip download`` but the destination), ``install_args`` (extra pip arguments on the board, without
    the --find-links folder) and ``files`` (the wheelhouse's wheels that fit, when the source is it).
    A malformed table raises :class:`TableError`.
    """
    board = f"{arch}, Python {python}, glibc {glibc}"
    py = _minor(python)
    major, minor = _version_tuple(py)[:2]
    plan: dict[str, Any] = {"board": board, "refused": False, "message": "", "source": "pypi", "row": "",
                            "requirements": [], "system_site_packages": False, "distro_numpy": "",
                            "platforms": platform_tags(arch, glibc), "download_args": [], "install_args": [],
                            "files": []}
    rows = list(table or [])
    labels = [_check_row(row, i) for i, row in enumerate(rows)]  # the whole table, before any choice
    files = list(wheelhouse_files or [])
    lab_note = ""
    if wheelhouse:
        if not files:
            return {**plan, "refused": True, "message": (
                f"{board}: socfarm_wheelhouse {wheelhouse} holds no .whl file (a missing folder?)")}
        found = _wheelhouse_plan(files, arch, python, glibc)
        if found is not None:
            plan.update(found, source="wheelhouse", row="socfarm_wheelhouse")
            # pip resolves the runtime's dependencies from the wheelhouse (numpy: from the distro if it has no
            # numpy wheel for the board) and says which one is missing
            plan["install_args"] = ["--no-index"]
            return plan
        lab_note = (f" (socfarm_wheelhouse {wheelhouse} has no ai-edge-litert or tflite-runtime wheel for "
                    f"cp{major}{minor} on {arch} with glibc {glibc}: it holds "
                    f"{', '.join(sorted(os.path.basename(f) for f in files))})")
    for row, label in zip(rows, labels):
        if not _matches(row, arch, py, glibc):
            continue
        name = str(row.get("name") or label)
        if row.get("refuse"):
            return {**plan, "refused": True, "row": name,
                    "message": f"{board}: {' '.join(str(row['refuse']).split())}{lab_note}"}
        system = bool(row.get("system_site_packages"))
        reqs = list(row["requirements"])
        args = ["--only-binary=:all:", "--python-version", py, "--implementation", "cp", "--abi", f"cp{major}{minor}"]
        for tag in plan["platforms"]:
            args += ["--platform", tag]
        no_deps = ["--no-deps"] if system else []  # numpy (the only dependency) is the distro's
        plan.update(row=name, requirements=reqs, system_site_packages=system,
                    distro_numpy=str(row.get("distro_numpy") or "") if system else "",
                    download_args=args + no_deps + reqs, install_args=["--no-index"] + no_deps)
        return plan
    return {**plan, "refused": True, "message": (
        f"{board}: no row of the runtime wheel table matches this board{lab_note}; add one to "
        "runtime_wheel_table_extra (arch, python, glibc, requirements), or give a folder of wheels built for "
        "this board as socfarm_wheelhouse")}


class FilterModule:
    """Filters of the runtime role."""

    def filters(self) -> dict:
        return {
            "runtime_wheel_choice": wheel_choice,
            "runtime_platform_tags": platform_tags,
            "runtime_version_in": version_in,
        }
