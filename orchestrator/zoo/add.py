"""``zoo add``: bring a .tflite file into the zoo, checked, analysed and recorded.

Two steps, so that a caller can plan with the new entries before anything is
written (a sweep that lists a model by path):

1. :func:`check_files` reads and checks every file (static checks, then one
   LiteRT load and invoke on the controller) and decides its zoo entry. Every
   problem of every file is collected; any problem refuses the whole batch.
2. :func:`commit` copies the files into the zoo folder as ``<name>_<dtype>.tflite``
   and rewrites ``manifest.json`` once, atomically, under a lock on the folder.
   An entry that is already there with the same sha256 is left as it is.

Names: the file's stem unless given (characters outside ``[A-Za-z0-9_.-]``
become ``_``). An added model may share its name with another added model of
another dtype (``my_net`` float32 and int8, compared like the study's CNNs),
never with a network of the builder (``zoo build``). The same name and dtype
with another file is refused unless ``replace`` is given.
"""

from __future__ import annotations

import fcntl
import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from orchestrator.errors import ZooError
from orchestrator.zoo.architectures import ARCHITECTURES
from orchestrator.zoo.litert_check import LitertCheck, litert_check
from orchestrator.zoo.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelEntry,
    atomic_write_bytes,
    load_manifest,
    save_manifest,
    sha256_file,
)
from orchestrator.zoo.validate import Inspection, ModelRefused, inspect_model

__all__ = ["Added", "ADDED_WEIGHTS", "add_models", "check_files", "commit", "current_manifest", "default_name", "merged"]

ADDED_WEIGHTS = "added models only: each file's own weights (see each entry's source)"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LOCK_NAME = ".manifest.lock"


@dataclass(frozen=True)
class Added:
    """One file of a ``zoo add``: its entry and what happens to it.

    ``status``: ``added``; ``replaced`` (another file had that name and dtype); ``present`` (the same file is
    already in the zoo: nothing to do); ``restored`` (recorded, but the zoo's copy was missing or damaged).
    """

    path: Path
    entry: ModelEntry
    status: str
    inspection: Inspection
    check: LitertCheck | None  # None when the same file was already in the zoo (not checked again)


def default_name(path: str | Path) -> str:
    """The file's stem, with characters a model name cannot have replaced by ``_``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem)
    return stem if _NAME_RE.match(stem) else f"m_{stem}"


def _empty() -> Manifest:
    return Manifest(builder_hash="", tensorflow_version="", weights=ADDED_WEIGHTS, models=[])


def current_manifest(zoo_dir: Path) -> Manifest:
    """The manifest in ``zoo_dir``, or an empty one when the folder has none yet."""
    path = zoo_dir / MANIFEST_NAME
    return load_manifest(path) if path.exists() else _empty()


def _filename(name: str, dtype: str) -> str:
    return f"{name}_{dtype}.tflite"


def _entry(name: str, ins: Inspection, source: str, check: LitertCheck | None) -> ModelEntry:
    return ModelEntry(
        name=name,
        display_name=name,
        dtype=ins.dtype,
        file=_filename(name, ins.dtype),
        sha256=ins.sha256,
        bytes=ins.size_bytes,
        input_shape=list(ins.stats.input_shape),
        input_dtype=ins.stats.input_dtype,
        params=ins.stats.params,
        macs=ins.stats.macs,
        source=source,
        flops=ins.info.flops,
        param_dtypes=dict(ins.stats.param_dtypes),
        litert_check=check.describe() if check is not None else None,
    )


def _conflict(manifest: Manifest, zoo_dir: Path, name: str, ins: Inspection, path: Path,
              replace: bool) -> tuple[str | None, str | None]:
    """(status, problem) of putting ``ins`` under ``name`` in ``manifest``."""
    if name in ARCHITECTURES:
        return None, (f"{path}: the name {name!r} is a network of the zoo builder (`zoo build`); "
                      "give the model another name")
    old = manifest.find(name, ins.dtype)
    filename = _filename(name, ins.dtype)
    other = next((e for e in manifest.models if e.file == filename and (e.name, e.dtype) != (name, ins.dtype)), None)
    if other is not None:
        return None, f"{path}: the zoo file {filename} belongs to {other.name} ({other.dtype}); give another name"
    if old is None:
        return "added", None
    if not old.added:
        return None, f"{path}: {name} ({ins.dtype}) is built by `zoo build`; give the model another name"
    if old.sha256 == ins.sha256:
        target = zoo_dir / old.file
        intact = target.is_file() and sha256_file(target) == ins.sha256
        return ("present" if intact else "restored"), None
    if replace:
        return "replaced", None
    return None, (f"{path}: the zoo already has {name} ({ins.dtype}) from {old.source}, a different file "
                  f"(sha256 {old.sha256[:12]}..., this one {ins.sha256[:12]}...): give another name "
                  "(--name), or replace it (--replace)")


def check_files(
    zoo_dir: str | Path,
    files: Sequence[str | Path],
    names: Sequence[str | None] | None = None,
    sources: Sequence[str | None] | None = None,
    replace: bool = False,
    run_litert: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> list[Added]:
    """Check every file and decide its entry; raise :class:`ModelRefused` (nothing written) on any problem."""
    say = on_progress or (lambda _msg: None)
    zoo_dir = Path(zoo_dir)
    paths = [Path(f) for f in files]
    names = list(names) if names is not None else [None] * len(paths)
    sources = list(sources) if sources is not None else [None] * len(paths)
    if not (len(names) == len(sources) == len(paths)):
        raise ZooError("check_files: one name and one source per file")
    manifest = current_manifest(zoo_dir)
    problems: list[str] = []
    decided: list[Added] = []
    batch: dict[tuple[str, str], Added] = {}
    for path, name, source in zip(paths, names, sources):
        name = name or default_name(path)
        if not _NAME_RE.match(name):
            problems.append(f"{path}: model name {name!r} must match {_NAME_RE.pattern}")
            continue
        try:
            ins = inspect_model(path)
        except ModelRefused as exc:
            problems.extend(exc.problems)
            continue
        twin = batch.get((name, ins.dtype))
        if twin is not None:
            if twin.inspection.sha256 != ins.sha256:
                problems.append(f"{path}: {twin.path} is another file that would also be {name} ({ins.dtype})")
            continue
        status, problem = _conflict(manifest, zoo_dir, name, ins, path, replace)
        if problem:
            problems.append(problem)
            continue
        check = None
        if status != "present" and run_litert:
            say(f"{path}: loading and invoking it once with LiteRT on the controller")
            check = litert_check(path)
            if check.ok is False:
                problems.append(f"{path}: refused by LiteRT on the controller: {check.detail}")
                continue
        entry = (manifest.find(name, ins.dtype) if status == "present"
                 else _entry(name, ins, source or str(path.resolve()), check))
        batch[(name, ins.dtype)] = Added(path, entry, status, ins, check)
        decided.append(batch[(name, ins.dtype)])
    if problems:
        raise ModelRefused(problems, "refused (nothing was added to the zoo)")
    return decided


def merged(manifest: Manifest, added: Sequence[Added]) -> Manifest:
    """``manifest`` with the entries of ``added`` put in (in memory)."""
    new = {(a.entry.name, a.entry.dtype): a.entry for a in added}
    kept = [e for e in manifest.models if (e.name, e.dtype) not in new]
    return manifest.model_copy(update={"models": kept + [new[k] for k in new]})


@contextmanager
def _locked(zoo_dir: Path) -> Iterator[None]:
    zoo_dir.mkdir(parents=True, exist_ok=True)
    with open(zoo_dir / LOCK_NAME, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def commit(zoo_dir: str | Path, added: Sequence[Added], replace: bool = False) -> Manifest:
    """Copy the files and record them (under the folder's lock; conflicts are checked again there)."""
    zoo_dir = Path(zoo_dir)
    todo = [a for a in added if a.status != "present"]
    with _locked(zoo_dir):
        manifest = current_manifest(zoo_dir)
        if not todo:
            return manifest
        problems = []
        contents: list[tuple[Added, bytes]] = []
        for a in todo:
            status, problem = _conflict(manifest, zoo_dir, a.entry.name, a.inspection, a.path, replace)
            if problem:
                problems.append(problem)
                continue
            if status == "present":
                continue
            try:
                data = a.path.read_bytes()
            except OSError as exc:
                problems.append(f"{a.path}: cannot read: {exc}")
                continue
            if hashlib.sha256(data).hexdigest() != a.entry.sha256:
                problems.append(f"{a.path}: the file changed while it was being added")
            contents.append((a, data))
        if problems:
            raise ModelRefused(problems, "refused (nothing was added to the zoo)")
        if not contents:
            return manifest
        # files overwritten by --replace are restored if anything fails before the manifest is saved
        before = {a.entry.file: (zoo_dir / a.entry.file).read_bytes()
                  for a, _ in contents if (zoo_dir / a.entry.file).is_file()}
        written: list[str] = []
        try:
            for a, data in contents:
                atomic_write_bytes(zoo_dir / a.entry.file, data)
                written.append(a.entry.file)
            updated = merged(manifest, [a for a, _ in contents])
            save_manifest(updated, zoo_dir / MANIFEST_NAME)
        except BaseException:
            for file in written:
                if file in before:
                    atomic_write_bytes(zoo_dir / file, before[file])
                else:
                    (zoo_dir / file).unlink(missing_ok=True)
            raise
        return updated


def add_models(zoo_dir: str | Path, files: Sequence[str | Path], name: str | None = None,
               source: str | None = None, replace: bool = False, run_litert: bool = True,
               on_progress: Callable[[str], None] | None = None) -> list[Added]:
    """Check, then add ``files`` to the zoo in ``zoo_dir`` (``name`` only with one file)."""
    if name is not None and len(files) != 1:
        raise ZooError(f"--name names one model; {len(files)} files were given")
    added = check_files(zoo_dir, files, [name] * len(files), [source] * len(files), replace, run_litert,
                        on_progress)
    commit(zoo_dir, added, replace)
    return added
