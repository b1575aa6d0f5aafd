"""Per-chunk ACT latency on CPU: the torch-free runtime (ONNX Runtime) vs the same PyTorch module, eager.

Run: python benchmarks/bench_act.py [--fixtures ../shared/fixtures/lerobot] [--repeats 50]
Both sides get the same observation; the runtime's time includes validation and normalisation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from benchmarks._results import publish  # noqa: E402
from edge.runtime.timing import call_times_ms  # noqa: E402
from export.checkpoint import load_checkpoint  # noqa: E402
from export.families.act import build_policy  # noqa: E402
from export.pipeline import export_package  # noqa: E402


def bench_case(fixtures: Path, case: str, workdir: Path, repeats: int) -> dict:
    ckpt_dir = fixtures / case / "pretrained_model"
    package = workdir / case
    export_package(ckpt_dir, package, progress=lambda _m: None)
    runner = edge.load_policy(package, backend="onnxruntime")
    rng = np.random.default_rng(0)
    obs = {}
    for inp in runner.package.manifest.inputs:
        obs[inp.name] = (rng.integers(0, 256, inp.shape, dtype=np.uint8) if inp.kind == "image"
                         else rng.standard_normal(inp.shape).astype(np.float32))
    _, policy = build_policy(load_checkpoint(ckpt_dir))
    tensors = {k: torch.from_numpy(v[None]) for k, v in runner.observation_processor(obs).items()}

    def eager() -> None:
        with torch.no_grad():
            policy.predict_action_chunk(tensors)

    # One block each, not interleaved: torch's OpenMP workers busy-wait after a call and would slow
    # whatever runs next, as a robot running only the runtime never sees.
    t_rt = call_times_ms(lambda: runner.predict_action_chunk(obs), repeats, warmup=5)
    t_pt = call_times_ms(eager, repeats, warmup=5)
    return {"case": case, "rt": t_rt, "pt": t_pt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parents[2] / "shared/fixtures/lerobot")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("act_env", "act_cam"):
            r = bench_case(args.fixtures, case, Path(tmp), args.repeats)
            rows.append(f"| {case} | {np.median(r['pt']):.2f} | {np.percentile(r['pt'], 99):.2f} | "
                        f"{np.median(r['rt']):.2f} | {np.percentile(r['rt'], 99):.2f} | "
                        f"**{np.median(r['pt']) / np.median(r['rt']):.1f}x** |")
    load = os.getloadavg()[0]
    table = "\n".join([
        f"Per-chunk latency in ms over {args.repeats} calls after 5 warm-up calls (1-min load average "
        f"{load:.2f} at the end); torch {torch.__version__} "
        f"({torch.get_num_threads()} threads) vs ONNX Runtime (all graph optimisations, one thread per core). "
        "Goal: the runtime at least 3x faster than eager PyTorch on act_cam.",
        "",
        "| case | PyTorch eager p50 | p99 | runtime p50 | p99 | speed-up (p50) |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    publish("act", "ACT per-chunk latency (CPU)", "benchmarks/bench_act.py", table, write=not args.no_write)


if __name__ == "__main__":
    main()
