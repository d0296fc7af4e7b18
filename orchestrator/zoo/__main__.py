"""``python -m orchestrator.zoo``: build, verify or inspect the model zoo.

    python -m orchestrator.zoo build [--set study|tiny|all] [--out DIR] [--force] [--seed N] [--dtype D ...]
    python -m orchestrator.zoo verify [--out DIR]
    python -m orchestrator.zoo stats FILE.tflite [...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from orchestrator.errors import SocfarmError
from orchestrator.zoo.architectures import STUDY, TINY
from orchestrator.zoo.convert import DTYPES
from orchestrator.zoo.manifest import MANIFEST_NAME, load_manifest, verify_files

SETS = {"study": STUDY, "tiny": TINY, "all": STUDY + TINY}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.zoo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the .tflite files and the manifest (cached)")
    build.add_argument("--set", choices=sorted(SETS), default="study", help="networks to build (default: study)")
    build.add_argument("--out", type=Path, default=Path("models"), help="output directory (default: models)")
    build.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    build.add_argument("--seed", type=int, default=0, help="weight and calibration seed (default: 0)")
    build.add_argument(
        "--dtype", action="append", choices=DTYPES, help="only this dtype (repeatable; default: all)"
    )
    verify = sub.add_parser("verify", help="check the files against the manifest")
    verify.add_argument("--out", type=Path, default=Path("models"), help="zoo directory (default: models)")
    stats = sub.add_parser("stats", help="print the static statistics of .tflite files as JSON")
    stats.add_argument("files", nargs="+", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "build":
            # Quieter TensorFlow C++ logging, unless the user asked otherwise.
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            from orchestrator.zoo.build import build_zoo

            t0 = time.monotonic()
            manifest = build_zoo(
                args.out,
                names=SETS[args.set],
                dtypes=tuple(args.dtype or DTYPES),
                seed=args.seed,
                force=args.force,
                on_progress=lambda msg: print(msg, file=sys.stderr, flush=True),
            )
            print(f"{len(manifest.models)} models in {args.out / MANIFEST_NAME} ({time.monotonic() - t0:.1f} s)")
            for e in manifest.models:
                print(f"  {e.file:32} {e.bytes / 1e6:9.2f} MB  {e.params:>12,} params  {e.macs / 1e6:>10,.1f}M MACs")
        elif args.command == "verify":
            manifest = load_manifest(args.out / MANIFEST_NAME)
            problems = verify_files(manifest, args.out)
            for p in problems:
                print(p, file=sys.stderr)
            if problems:
                return 2
            print(f"{len(manifest.models)} models OK")
        elif args.command == "stats":
            from orchestrator.zoo.tflite_stats import model_stats

            out = {str(f): dataclasses.asdict(model_stats(f)) for f in args.files}
            print(json.dumps(out, indent=2))
    except SocfarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
