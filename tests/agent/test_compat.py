"""The agent runs on boards: Python >= 3.8, stdlib + numpy + a TFLite runtime only."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agent.agent_proc import REPO, agent_env

AGENT_DIR = REPO / "device_agent"
AGENT_FILES = sorted(AGENT_DIR.rglob("*.py"))  # subpackages (power/) too
TARGET = (3, 8)
ALLOWED_THIRD_PARTY = {"numpy", "device_agent"}  # runtimes are imported by name in runtime.py
FORBIDDEN = {"tensorflow", "keras", "tf_keras", "orchestrator"}


def vermin_exe() -> str:
    exe = shutil.which("vermin", path=str(Path(sys.executable).parent)) or shutil.which("vermin")
    if exe is None:
        pytest.fail("vermin is not installed: pip install vermin (needed to check Python 3.8 compatibility)")
    return exe


def vermin_minimum(paths) -> tuple:
    """Minimum Python 3 version vermin reports for ``paths`` (annotations evaluated: strictest)."""
    proc = subprocess.run(
        [vermin_exe(), "--no-tips", "--eval-annotations", "--violations", "-t=%d.%d-" % TARGET]
        + [str(p) for p in paths],
        capture_output=True, text=True,
    )
    match = re.search(r"^Minimum required versions:\s*(.+)$", proc.stdout, re.MULTILINE)
    assert match, "unexpected vermin output:\n" + proc.stdout + proc.stderr
    versions = [v.strip().lstrip("~!") for v in match.group(1).split(",")]
    threes = [tuple(int(x) for x in v.split(".")) for v in versions if v.startswith("3")]
    return (threes[0] if threes else (3, 0)), proc.stdout


def test_vermin_minimum_version_is_at_most_3_8():
    minimum, report = vermin_minimum(AGENT_FILES)
    assert minimum <= TARGET, "device_agent needs Python %s (> 3.8):\n%s" % (".".join(map(str, minimum)), report)


@pytest.mark.parametrize(
    "code, needs",
    [
        ('x = "ab".removeprefix("a")\n', (3, 9)),
        ("X = list[int]\n", (3, 9)),
        ("import dataclasses\n@dataclasses.dataclass(slots=True)\nclass A:\n    x: int\n", (3, 10)),
    ],
)
def test_vermin_check_catches_newer_features(tmp_path, code, needs):
    path = tmp_path / "newer.py"
    path.write_text(code)
    minimum, _ = vermin_minimum([path])
    assert minimum >= needs


def test_syntax_parses_as_python_3_8():
    for path in AGENT_FILES:
        ast.parse(path.read_text(), filename=str(path), feature_version=TARGET)  # e.g. `match` fails here


def _runtime_unions(tree: ast.AST):
    """``X | Y`` on types outside annotations (3.10+ at runtime; vermin does not see it)."""
    annotations = set()
    for node in ast.walk(tree):
        for ann in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if ann is not None:
                annotations.update(id(n) for n in ast.walk(ann))
    type_names = {"int", "float", "str", "bytes", "bool", "list", "dict", "tuple", "set", "type", "object"}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and id(node) not in annotations:
            for side in (node.left, node.right):
                if (isinstance(side, ast.Constant) and side.value is None) or (
                        isinstance(side, ast.Name) and side.id in type_names) or isinstance(side, ast.Subscript):
                    yield node.lineno
                    break


def test_no_type_unions_evaluated_at_runtime():
    bad = ["%s:%d" % (p.name, line) for p in AGENT_FILES for line in _runtime_unions(ast.parse(p.read_text()))]
    assert bad == []
    assert list(_runtime_unions(ast.parse("Y = int | None\n"))) == [1]


def test_every_module_uses_postponed_annotations():
    for path in AGENT_FILES:
        text = path.read_text()
        if path.name == "__init__.py" and "def " not in text:
            continue
        assert "from __future__ import annotations" in text, path.name


def test_imports_only_stdlib_numpy_and_itself():
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for path in AGENT_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or (top not in stdlib and top not in ALLOWED_THIRD_PARTY):
                    bad.append("%s: %s" % (path.name, name))
    assert bad == []


def test_running_the_agent_loads_neither_tensorflow_nor_the_orchestrator():
    code = (
        "import json, sys\n"
        "import device_agent.__main__, device_agent.runner\n"
        "from device_agent.runtime import import_runtime\n"
        "import_runtime()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in %r)))\n" % (sorted(FORBIDDEN),)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(REPO), env=agent_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
