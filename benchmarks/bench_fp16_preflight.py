"""Time of the FP16 preflight (`python -m export.fp16`) at LeRobot's default model sizes, and what it found.

    python benchmarks/bench_fp16_preflight.py [--models act] [--steps 8] [--no-write]

For each case of benchmarks/default_models.py (random weights; exported once under build/bench_defaults/), run
the whole preflight on a temporary copy of the package, as `edge-export --fp16-check` would after an export:
conversion, range screen and simulated FP16 on the validation samples, and the policy steps. Writes the
"fp16_preflight" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import publish  # noqa: E402
from benchmarks.default_models import MODELS, ensure_package  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from export.fp16.preflight import preflight  # noqa: E402


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["act"], choices=sorted(MODELS))
    ap.add_argument("--steps", type=positive_int, default=8, help="policy steps compared (default 8, as the CLI)")
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    rows = []
    for name in args.models:
        package = ensure_package(MODELS[name], lambda m: print(m, file=sys.stderr))
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(shutil.copytree(package, Path(tmp) / name))
            samples = load_package(copy).manifest.validation.samples
            t0 = time.monotonic()
            record = preflight(copy, steps=args.steps, progress=lambda m: print(m, file=sys.stderr))
            seconds = time.monotonic() - t0
        ranges = [g["range"] for g in record["graphs"].values()]
        largest = max((r["largest"] for r in ranges if r["largest"]), key=lambda t: t["max_abs"])
        rows.append(f"| {name} | {samples} | {args.steps} | {seconds:.1f} | {record['worst_output_scaled_error']:.2e} | "
                    f"{record['worst_step_normalized_action_error']:.2e} | {sum(r['tensors'] for r in ranges)} | "
                    f"{largest['max_abs']:.3g} | {max(r['below_normal_share'] for r in ranges):.2%} | "
                    f"{'pass' if record['ok'] else 'FAIL'} |")
    body = "\n".join([
        "Whole FP16 preflight on a copy of the default-size package (random weights, benchmarks/default_models.py), "
        "ONNX Runtime CPU: errors with FP16 activations simulated; range over every FP16-held tensor.",
        "",
        "| model | validation samples | steps | seconds | worst output (scaled) | worst step (normalised) | "
        "tensors screened | largest max abs | below 6.1e-5 | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    publish("fp16_preflight", "FP16 preflight at default sizes", "benchmarks/bench_fp16_preflight.py", body,
            write=not args.no_write)


if __name__ == "__main__":
    main()
