"""Diffusion Policy: few-step DDIM study and runtime vs eager PyTorch, on the diffusion_cam LeRobot fixture.

Exports the fixture with a fused 10-step DDIM graph, runs `edge bench-steps`' study on it, then times one
chunk (observation window → chunk, DDIM with the checkpoint's 10 steps) in eager PyTorch, sampled as LeRobot
does (diffusers' DDIMScheduler, torch.no_grad), against the runtime per step and fused. Needs the export and
test extras (torch, diffusers). Writes its section of benchmarks/RESULTS.md.

    python benchmarks/bench_diffusion.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from benchmarks._results import publish  # noqa: E402
from benchmarks.roofline import graph_work, measure  # noqa: E402
from edge.commands.bench_steps import format_table, study  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.timing import median_ms  # noqa: E402
from export.checkpoint import load_checkpoint  # noqa: E402
from export.families.base import ExportOptions  # noqa: E402
from export.families.diffusion import ObsEncoderGraph, build_policy  # noqa: E402
from export.pipeline import export_package  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lerobot" / "diffusion_cam" / "pretrained_model"
STEPS = [1, 2, 4, 8, 10, 16, 32, 100]
K = 10
REPEATS = 20


def eager_sampler(window: dict[str, np.ndarray], noise: np.ndarray):
    """LeRobot's generate_actions loop in eager PyTorch: encoder, then K U-Net calls + diffusers DDIM steps."""
    config, policy = build_policy(load_checkpoint(FIXTURE))
    model = policy.diffusion
    encoder = ObsEncoderGraph(model, list(window)).eval()
    scheduler = DDIMScheduler(num_train_timesteps=config.num_train_timesteps, beta_start=config.beta_start,
                              beta_end=config.beta_end, beta_schedule=config.beta_schedule,
                              clip_sample=config.clip_sample, clip_sample_range=config.clip_sample_range,
                              prediction_type=config.prediction_type)
    inputs = [torch.from_numpy(v) for v in window.values()]
    noise_t = torch.from_numpy(noise)

    @torch.no_grad()
    def sample() -> torch.Tensor:
        global_cond = encoder(*inputs)
        x = noise_t
        scheduler.set_timesteps(K)
        for t in scheduler.timesteps:
            out = model.unet(x, torch.full(x.shape[:1], t, dtype=torch.long), global_cond=global_cond)
            x = scheduler.step(out, t, x).prev_sample
        return x

    return sample


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        pkg = Path(tmp) / "diffusion_cam"
        export_package(FIXTURE, pkg, ExportOptions(samples=3, extra={"fused_steps": K}), progress=lambda _m: None)
        denoiser = pkg / "denoiser.onnx"
        step_threads = OnnxRuntimeBackend().graph_threads(denoiser)  # what auto gives this graph on a CPU
        limits, work = measure(step_threads), graph_work(denoiser)
        rows = study(str(pkg), STEPS, repeats=REPEATS)

        package = edge.load_policy(pkg)  # the checkpoint's DDIM-10; the fused graph is picked up
        per_step = edge.load_policy(pkg, fused=False)
        data = package.package.validation_samples()
        window = {n: data[f"obs_encoder/0/in/{n}"] for n in package.input_names}
        noise = np.random.default_rng(0).standard_normal(package.chunk_shape, dtype=np.float32)
        eager = eager_sampler(window, noise)

        def runtime(runner):
            return lambda: runner.denoise(runner.graphs["obs_encoder"].run(window)["global_cond"], noise)

        agree = float(np.max(np.abs(eager().numpy()[0] - runtime(package)())))
        eager_ms = median_ms(eager)
        fused_ms, step_ms = median_ms(runtime(package)), median_ms(runtime(per_step))
    load_after = os.getloadavg()[0]
    threads = torch.get_num_threads()
    compare = "\n".join([
        "| sampler | chunk latency (ms) | speed-up vs eager |",
        "|---|---:|---:|",
        f"| eager PyTorch {torch.__version__} ({threads} threads), diffusers DDIM-{K} | {eager_ms:.2f} | 1.00x |",
        f"| runtime, per-step denoiser graphs, DDIM-{K} | {step_ms:.2f} | {eager_ms / step_ms:.2f}x |",
        f"| runtime, fused `denoise_{K}` graph | {fused_ms:.2f} | {eager_ms / fused_ms:.2f}x |",
    ])
    fused_row = next(r for r in rows if r.steps == K)
    first, last = rows[0], rows[-1]
    slope = (last.per_step_ms - first.per_step_ms) / (last.steps - first.steps)
    roofline = limits.limit_ms(work.flops, work.weight_bytes)
    markdown = "\n\n".join([
        "Fixture `diffusion_cam` (random weights: deviations show sampler behaviour, not task quality). "
        "Chunk latency = observation window → (16, 6) chunk, median of "
        f"{REPEATS} runs, ONNX Runtime CPU. Deviations in policy units over the 3 validation windows, "
        f"same initial noise per window. 1-minute load average {load_before:.2f} before, {load_after:.2f} after.",
        format_table(rows),
        f"Fused vs per-step at K={K}: {fused_row.fused_ms:.2f} ms vs {fused_row.per_step_ms:.2f} ms "
        f"(goal: fused faster).",
        f"Cost of one more denoising step (per-step graphs, K={first.steps} → {last.steps}): {slope:.3f} ms. The "
        f"step's roofline: {work.weight_bytes / 1e6:.1f} MB of weights at {limits.read_gbps:.1f} GB/s, "
        f"{work.flops / 1e9:.3f} GFLOP at {limits.sgemm_gflops:.0f} GFLOP/s ({step_threads} thread(s), as the runtime "
        f"runs this graph; measured in this run) = {roofline:.3f} ms; slope / roofline = {slope / roofline:.2f} "
        "(goal: at most 2).",
        f"Runtime vs eager PyTorch, same sampler (DDIM) and K={K}, max |runtime - eager| = {agree:.2g} "
        "(goal: runtime >= 2x faster):",
        compare,
    ])
    publish("diffusion", "Diffusion Policy: few-step DDIM study", "benchmarks/bench_diffusion.py", markdown,
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
