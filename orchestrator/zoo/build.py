"""Build the model zoo: Keras definition -> .tflite files + manifest, with a cache.

Cache rule: ``builder_hash`` is the sha256 of the source of
``architectures.py`` and ``convert.py``, the TensorFlow version and the
seed. A (network, dtype) is rebuilt only when it is missing from the
existing manifest, when its file is missing or does not match its sha256,
when the builder hash changed, or when ``force`` is set. Cached entries get
their static figures (params, MACs, ...) recomputed from the file, which is
cheap and needs no TensorFlow.

Entries added with ``zoo add`` (they have a ``source``) are kept as they are,
whatever the builder hash; the builder refuses to build over one.

Every .tflite is written atomically and the manifest is rewritten after
every file, so an interrupted build loses nothing already built.

TensorFlow is imported only when ``build_zoo`` runs.
"""

from __future__ import annotations

import gc
import hashlib
import time
from pathlib import Path
from typing import Callable, Sequence

from orchestrator.errors import ZooError
from orchestrator.zoo import architectures, convert
from orchestrator.zoo.architectures import ARCHITECTURES, STUDY
from orchestrator.zoo.convert import DTYPES
from orchestrator.zoo.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelEntry,
    atomic_write_bytes,
    load_manifest,
    save_manifest,
    sha256_file,
)
from orchestrator.zoo.tflite_stats import ModelStats, model_stats, stats_from_bytes

__all__ = ["build_zoo", "builder_hash", "weights_note", "model_filename"]

ProgressFn = Callable[[str], None]


def _tf():
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ZooError("building the model zoo needs TensorFlow, which is not installed: run `pip install -e .[zoo]`") from exc
    return tf


def builder_hash(seed: int, tensorflow_version: str) -> str:
    """sha256 over the builder's sources, the TensorFlow version and the seed."""
    digest = hashlib.sha256()
    for module in (architectures, convert):
        digest.update(Path(module.__file__).read_bytes())
        digest.update(b"\0")
    digest.update(f"tensorflow={tensorflow_version}\0seed={seed}".encode())
    return digest.hexdigest()


def weights_note(seed: int) -> str:
    return f"random, seed {seed}: no pretrained weights; throughput and energy depend on the architecture only"


def model_filename(name: str, dtype: str) -> str:
    return f"{name}_{dtype}.tflite"


def _entry(name: str, dtype: str, file: str, sha256: str, size: int, stats: ModelStats) -> ModelEntry:
    return ModelEntry(
        name=name,
        display_name=ARCHITECTURES[name].display_name if name in ARCHITECTURES else name,
        dtype=dtype,
        file=file,
        sha256=sha256,
        bytes=size,
        input_shape=list(stats.input_shape),
        input_dtype=stats.input_dtype,
        params=stats.params,
        macs=stats.macs,
    )


def _sort_key(entry: ModelEntry) -> tuple:
    order = list(ARCHITECTURES)
    rank = order.index(entry.name) if entry.name in order else len(order)
    dtype_rank = DTYPES.index(entry.dtype) if entry.dtype in DTYPES else len(DTYPES)
    return (rank, entry.name, dtype_rank, entry.dtype)


def build_zoo(
    out_dir: Path,
    names: Sequence[str] = STUDY,
    dtypes: Sequence[str] = DTYPES,
    seed: int = 0,
    force: bool = False,
    on_progress: ProgressFn | None = None,
) -> Manifest:
    """Build (or reuse from the cache) ``names`` x ``dtypes`` into ``out_dir``; return the manifest.

    ``on_progress`` receives one human-readable line per step, e.g.
    ``"squeezenet int8: cached (squeezenet_int8.tflite)"``,
    ``"squeezenet int8: converting (checksum mismatch)"`` and
    ``"squeezenet int8: built squeezenet_int8.tflite (...)"``.
    """
    say: ProgressFn = on_progress or (lambda _msg: None)
    out_dir = Path(out_dir)
    names = tuple(dict.fromkeys(names))
    dtypes = tuple(dict.fromkeys(dtypes))
    unknown = [n for n in names if n not in ARCHITECTURES]
    if unknown:
        raise ZooError(f"unknown network(s) {', '.join(unknown)}: known are {', '.join(ARCHITECTURES)}")
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise ZooError(f"unknown dtype(s) {', '.join(bad)}: known are {', '.join(DTYPES)}")

    tf = _tf()
    bhash = builder_hash(seed, tf.__version__)
    manifest_path = out_dir / MANIFEST_NAME
    out_dir.mkdir(parents=True, exist_ok=True)

    old: Manifest | None = None
    if manifest_path.exists():
        try:
            old = load_manifest(manifest_path)
        except ZooError as exc:
            say(f"ignoring the existing manifest: {exc}")

    entries: dict[tuple[str, str], ModelEntry] = {}
    if old is not None and old.builder_hash == bhash:
        entries = {(e.name, e.dtype): e for e in old.models}
    elif old is not None:
        # models added with `zoo add` are not the builder's: they stay, whatever the builder
        entries = {(e.name, e.dtype): e for e in old.models if e.added}
        if old.builder_hash:
            say(f"builder changed (hash {old.builder_hash[:12]} -> {bhash[:12]}): every requested file is rebuilt")
        stale = sorted({f"{e.name} {e.dtype}" for e in old.models
                        if not e.added and (e.name not in names or e.dtype not in dtypes)})
        if stale:
            say(f"dropping from the manifest (built by another builder, not requested): {', '.join(stale)}")

    def current() -> Manifest:
        return Manifest(
            builder_hash=bhash,
            tensorflow_version=tf.__version__,
            weights=weights_note(seed),
            models=sorted(entries.values(), key=_sort_key),
        )

    # Decide what to rebuild.
    todo: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        for dtype in dtypes:
            key = (name, dtype)
            entry = entries.get(key)
            if entry is not None and entry.added:
                raise ZooError(f"{manifest_path}: {name} ({dtype}) was added with `zoo add` (from {entry.source}); "
                               "the builder will not overwrite it: remove that entry first")
            path = out_dir / (entry.file if entry else model_filename(name, dtype))
            if force:
                reason = "forced"
            elif entry is None:
                reason = "not built yet" if old is None or old.builder_hash == bhash else "builder changed"
            elif not path.is_file():
                reason = "file missing"
            elif sha256_file(path) != entry.sha256:
                reason = "checksum mismatch"
            else:
                reason = None
            if reason is None:
                entries[key] = _entry(name, dtype, entry.file, entry.sha256, path.stat().st_size, model_stats(path))
                say(f"{name} {dtype}: cached ({entry.file})")
            else:
                todo.setdefault(name, []).append((dtype, reason))

    manifest = current()
    if old is None or manifest.model_dump() != old.model_dump():
        save_manifest(manifest, manifest_path)

    for name, jobs in todo.items():
        spec = ARCHITECTURES[name]
        started = time.monotonic()
        say(f"{name}: building the Keras model ({spec.display_name}, seed {seed})")
        model = spec.builder(seed)
        try:
            for dtype, reason in jobs:
                t0 = time.monotonic()
                say(f"{name} {dtype}: converting ({reason})")
                data = convert.to_tflite(model, dtype, seed)
                stats = stats_from_bytes(data, source=f"{name} {dtype}")
                if stats.input_dtype != dtype:
                    raise ZooError(f"{name} {dtype}: the converted model has a {stats.input_dtype} input")
                filename = model_filename(name, dtype)
                atomic_write_bytes(out_dir / filename, data)
                entries[(name, dtype)] = _entry(
                    name, dtype, filename, hashlib.sha256(data).hexdigest(), len(data), stats
                )
                save_manifest(current(), manifest_path)
                say(
                    f"{name} {dtype}: built {filename} ({len(data) / 1e6:.2f} MB, {stats.params:,} params, "
                    f"{stats.macs / 1e6:,.1f}M MACs) in {time.monotonic() - t0:.1f} s"
                )
                del data
        finally:
            del model
            tf.keras.backend.clear_session()
            gc.collect()
        say(f"{name}: done in {time.monotonic() - started:.1f} s")

    return current()
