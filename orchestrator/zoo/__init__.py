"""Model zoo: the study's CNNs as TFLite files (float32 and full-integer int8) plus a manifest.

Importing this package does not import TensorFlow: the manifest and the
static statistics of .tflite files work without it. Only ``build_zoo`` and
``to_tflite`` (and the ``build_*`` functions) need it, and import it lazily.

Command line: ``python -m orchestrator.zoo build [--set study|tiny|all] [--out DIR] [--force]``.
"""

from orchestrator.zoo.architectures import ARCHITECTURES, STUDY, TINY, ArchSpec
from orchestrator.zoo.build import build_zoo, builder_hash, model_filename, weights_note
from orchestrator.zoo.convert import DTYPES, to_tflite
from orchestrator.zoo.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelEntry,
    load_manifest,
    save_manifest,
    sha256_file,
    verify_files,
)
from orchestrator.zoo.tflite_stats import ModelStats, TensorInfo, model_stats, stats_from_bytes

__all__ = [
    "ARCHITECTURES",
    "STUDY",
    "TINY",
    "ArchSpec",
    "DTYPES",
    "MANIFEST_NAME",
    "Manifest",
    "ModelEntry",
    "ModelStats",
    "TensorInfo",
    "build_zoo",
    "builder_hash",
    "load_manifest",
    "model_filename",
    "model_stats",
    "save_manifest",
    "sha256_file",
    "stats_from_bytes",
    "to_tflite",
    "verify_files",
    "weights_note",
]
