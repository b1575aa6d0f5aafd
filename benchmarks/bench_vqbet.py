"""VQ-BeT latency on CPU: the torch-free runtime (ONNX Runtime) vs eager PyTorch, same weights.

Uses LeRobot's vqbet_cam fixture. Runtime: `predict_action_chunk` on a raw observation (validation,
normalisation, encoding the new frame, policy graph, code choice, decode graph, unnormalisation) and
the work of a `select_action` step that only pops the queue (encoding the new frame into the history). PyTorch: the
export/models/vqbet.py module as LeRobot runs it at a chunk step (all n_obs_steps frames encoded), on
the already-normalised window. Paths are timed round-robin so that machine load hits them alike.

    python benchmarks/bench_vqbet.py [--iterations 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from benchmarks._results import publish  # noqa: E402
from export.checkpoint import load_checkpoint  # noqa: E402
from export.families.base import ExportOptions  # noqa: E402
from export.families.vqbet import build_policy  # noqa: E402
from export.pipeline import export_package  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "lerobot" / "vqbet_cam"


def timed(fns: dict[str, Callable[[], object]], iterations: int, warmup: int = 3) -> dict[str, list[float]]:
    """Wall-clock milliseconds per call of each function, called round-robin after `warmup` untimed rounds."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + iterations):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                out[name].append((time.perf_counter() - t0) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()

    ref = load_file(str(FIXTURE / "reference.safetensors"))
    obs = {k.split(".", 2)[2]: v for k, v in ref.items() if k.startswith("obs.0.")}
    _, policy = build_policy(load_checkpoint(FIXTURE / "pretrained_model"))
    with tempfile.TemporaryDirectory() as tmp:
        export_package(FIXTURE / "pretrained_model", Path(tmp) / "vqbet", ExportOptions(samples=1),
                       progress=lambda _msg: None)
        greedy = edge.load_policy(Path(tmp) / "vqbet", greedy=True)
        sampled = edge.load_policy(Path(tmp) / "vqbet", seed=0)
        ref_window = {name: np.stack([v] * policy.config.n_obs_steps)[None]
                      for name, v in greedy.observation_processor(obs).items()}
        state = torch.from_numpy(ref_window["observation.state"])
        image = torch.from_numpy(ref_window["observation.images.top"])
        load_before = os.getloadavg()[0]
        with torch.no_grad():
            rows = timed({
                "edge runtime, chunk step, greedy": lambda: greedy.predict_action_chunk(obs),
                "edge runtime, chunk step, sampled": lambda: sampled.predict_action_chunk(obs),
                "edge runtime, step without a new chunk (frame encode + history)": lambda: greedy.observe(obs),
                "PyTorch eager (same module), chunk, greedy": lambda: policy.predict_action_chunk(
                    state, image, greedy=True),
                "PyTorch eager (same module), chunk, sampled": lambda: policy.predict_action_chunk(state, image),
            }, args.iterations)

    load = f"1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after the timing"
    torch_median = statistics.median(rows["PyTorch eager (same module), chunk, greedy"])
    lines = ["| path | median ms | p90 ms | mean ms | median speed-up vs PyTorch chunk greedy |",
             "|---|---|---|---|---|"]
    for name, ms in rows.items():
        median = statistics.median(ms)
        lines.append(f"| {name} | {median:.1f} | {np.percentile(ms, 90):.1f} | {statistics.fmean(ms):.1f} | "
                     f"{torch_median / median:.1f}x |")
    body = "\n".join(lines) + (
        f"\n\nOne chunk = {policy.config.action_chunk_size} actions from a window of {policy.config.n_obs_steps} "
        f"observations (state 6, camera 96x96, crop 84x84, ResNet-18 GroupNorm, GPT {policy.config.gpt_n_layer} "
        f"layers); {args.iterations} timed calls after 3 warm-up calls; torch threads {torch.get_num_threads()}, "
        "ONNX Runtime default threads. Runtime times include observation checks and (un)normalisation; "
        "PyTorch times start from normalised tensors. The runtime encodes each frame once, on arrival, so a "
        "chunk step encodes one frame where LeRobot encodes the whole window; over one chunk of steps both "
        f"encode the same number of frames (n_obs_steps == action_chunk_size here). Machine: {load} on "
        f"{os.cpu_count()} CPUs; other work on the machine inflates and scatters the times.")
    publish("vqbet", "VQ-BeT latency", "benchmarks/bench_vqbet.py", body, write=not args.no_write)


if __name__ == "__main__":
    main()
