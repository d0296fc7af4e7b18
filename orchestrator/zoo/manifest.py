"""The zoo manifest: which .tflite files exist, their checksums and static figures.

``manifest.json`` lives next to the model files; every ``file`` is relative
to the manifest's directory. No TensorFlow needed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.checksum import sha256_file
from orchestrator.errors import ZooError

__all__ = [
    "MANIFEST_NAME",
    "DTYPES_RECORDED",
    "ModelEntry",
    "Manifest",
    "load_manifest",
    "save_manifest",
    "verify_files",
    "sha256_file",
    "atomic_write_bytes",
]

MANIFEST_NAME = "manifest.json"


DTYPES_RECORDED = ("float32", "int8", "uint8")


class ModelEntry(BaseModel):
    """One .tflite file of the zoo: built by ``zoo build`` (``source`` None) or added by ``zoo add``.

    ``dtype`` is the dtype of the model's input and output: float32, or int8/uint8 for
    fully quantized models (uint8 I/O is what older quantization tools produce).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    display_name: str
    dtype: Literal["float32", "int8", "uint8"]
    file: str = Field(min_length=1, description="path relative to the manifest's directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    input_shape: list[int]
    input_dtype: str
    params: int = Field(ge=0)
    macs: int = Field(ge=0)
    # Optional: entries written before `zoo add` existed have none of these.
    source: str | None = Field(None, description="where an added model came from (path, package); None: built")
    flops: int | None = Field(None, ge=0, description="FLOPs of one inference (orchestrator.analysis.model_info)")
    param_dtypes: dict[str, int] | None = Field(None, description="weight dtype -> parameter elements")
    litert_check: str | None = Field(None, description="what loading and invoking it on the controller gave")

    @property
    def added(self) -> bool:
        """Added by `zoo add` (not built by `zoo build`)."""
        return self.source is not None


class Manifest(BaseModel):
    """The zoo: the build that made it and one entry per (network, dtype)."""

    model_config = ConfigDict(extra="forbid")

    manifest_version: Literal[1] = 1
    builder_hash: str = Field("", description="empty until `zoo build` built a model into this zoo")
    tensorflow_version: str = ""
    weights: str = Field("", description="the weights of the built models (added models have their own)")
    models: list[ModelEntry] = Field(default_factory=list)

    def find(self, name: str, dtype: str) -> ModelEntry | None:
        """The entry of network ``name`` in ``dtype``, or None."""
        for entry in self.models:
            if entry.name == name and entry.dtype == dtype:
                return entry
        return None

    def dtypes_of(self, name: str) -> list[str]:
        """Every dtype the zoo has network ``name`` in."""
        return [e.dtype for e in self.models if e.name == name]


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; any problem raises ZooError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ZooError(f"{path}: zoo manifest not found (build it with `python -m orchestrator.zoo build`)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ZooError(f"{path}: cannot read zoo manifest: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZooError(f"{path}:{exc.lineno}: invalid JSON in zoo manifest: {exc.msg}") from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ZooError(f"{path}: invalid zoo manifest: {problems}") from exc


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write the manifest as indented JSON, atomically."""
    text = json.dumps(manifest.model_dump(mode="json"), indent=2) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def verify_files(manifest: Manifest, root: str | Path) -> list[str]:
    """Check every entry's file under ``root``; return one line per problem (empty = all good)."""
    root = Path(root)
    problems: list[str] = []
    for entry in manifest.models:
        path = root / entry.file
        label = f"{entry.name} {entry.dtype}"
        if not path.is_file():
            problems.append(f"{label}: missing file {path}")
            continue
        try:
            actual = sha256_file(path)
        except OSError as exc:
            problems.append(f"{label}: cannot read {path}: {exc}")
            continue
        if actual != entry.sha256:
            problems.append(f"{label}: sha256 mismatch for {path}: manifest {entry.sha256[:12]}..., file {actual[:12]}...")
        elif path.stat().st_size != entry.bytes:  # pragma: no cover - same hash, different size cannot happen
            problems.append(f"{label}: size mismatch for {path}")
    return problems
