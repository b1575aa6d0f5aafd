"""Per-chunk latency, roofline, memory and start-up of each policy family at LeRobot's default model sizes.

    python benchmarks/bench_defaults.py [--models act diffusion diffusion_0.6 vqbet] [--rounds 5] [--no-write]

For each case of benchmarks/default_models.py (LeRobot's default configurations on its example datasets, random
weights): write a LeRobot-layout checkpoint under build/bench_defaults/, export it with `edge-export` (reused while
the checkpoint is unchanged), then in this one process measure the machine (ONNX Runtime sgemm and weight-streaming
bandwidth on the runtime's threads, benchmarks/roofline.py), time one chunk of eager PyTorch (the same runner on
this repo's LeRobot-identical modules, export/torch_backend.py, same threads) and of the runtime (edge.load_policy,
ONNX Runtime CPU), and count the chunk's FLOPs and weight bytes from the ONNX graphs the runner called. A fresh
process then loads the package, times load_policy to the first action and runs 20 chunks: its peak resident memory
(VmHWM) and its growth from chunk 2 to chunk 20. Writes the "defaults" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import edge  # noqa: E402
from benchmarks.default_models import MODELS, WORKDIR, DefaultModel, ensure_package  # noqa: E402
from benchmarks.roofline import MachineLimits, graph_work, measure  # noqa: E402
from edge.runtime.backends.onnxruntime import loop_free_cores  # noqa: E402
from export.torch_backend import torch_policy  # noqa: E402

CHUNKS = 20
RSS_MARGIN_MB = 200

FRESH_PROCESS = r"""
import json, sys, time
import numpy as np
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
import edge
observation = dict(np.load(sys.argv[2]))
rss_before = status("VmRSS")
t0 = time.perf_counter()
policy = edge.load_policy(sys.argv[1], backend="onnxruntime")
t_load = time.perf_counter() - t0
policy.select_action(observation)
t_first = time.perf_counter() - t0
rss = []
for _ in range(int(sys.argv[3]) - 1):
    policy.predict_action_chunk(observation)
    rss.append(status("VmRSS"))
print(json.dumps({"load_s": t_load, "first_action_s": t_first, "rss_before_mb": rss_before,
                  "rss_chunk2_mb": rss[0], "rss_end_mb": rss[-1], "peak_mb": status("VmHWM")}))
"""


def observation(policy, rng: np.random.Generator) -> dict[str, np.ndarray]:  # noqa: ANN001
    """A random observation as the robot delivers it (uint8 HWC images, float32 states)."""
    return {i.name: (rng.integers(0, 256, i.shape, dtype=np.uint8) if i.kind == "image"
                     else rng.standard_normal(i.shape).astype(np.float32)) for i in policy.package.manifest.inputs}


class Counting:
    """Wraps a GraphSession and counts its calls."""

    def __init__(self, session):  # noqa: ANN001
        self.session, self.calls = session, 0

    def run(self, feeds):  # noqa: ANN001, ANN201
        self.calls += 1
        return self.session.run(feeds)


def chunk_work(policy, obs: dict[str, np.ndarray]) -> tuple[float, float, dict[str, int]]:  # noqa: ANN001
    """FLOPs and weight bytes of one chunk: each graph's work times the calls the runner made to it."""
    counters = {name: Counting(s) for name, s in policy.graphs.items()}
    policy.graphs.update(counters)
    policy.reset()
    policy.predict_action_chunk(obs)
    policy.graphs.update({name: c.session for name, c in counters.items()})
    calls = {name: c.calls for name, c in counters.items() if c.calls}
    work = {name: graph_work(policy.package.graph_path(name)) for name in calls}
    return (sum(work[n].flops * k for n, k in calls.items()), sum(work[n].weight_bytes * k for n, k in calls.items()),
            calls)


def median_chunk_ms(policy, obs: dict[str, np.ndarray], rounds: int) -> float:  # noqa: ANN001
    policy.reset()
    policy.predict_action_chunk(obs)  # warm-up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        policy.predict_action_chunk(obs)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def fresh_process(package: Path, obs: dict[str, np.ndarray], cache: Path) -> dict:
    """Load the package in a new process (ONNX Runtime's model cache in `cache`), first action, 20 chunks."""
    path = WORKDIR / "observation.npz"
    np.savez(path, **obs)
    out = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(package), str(path), str(CHUNKS)], cwd=ROOT,
                         check=True, capture_output=True, text=True, env={**os.environ, "EDGE_CACHE_DIR": str(cache)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(model: DefaultModel, limits: MachineLimits, rounds: int, log) -> dict:  # noqa: ANN001
    package = ensure_package(model, log)
    runtime = edge.load_policy(package, backend="onnxruntime")
    obs = observation(runtime, np.random.default_rng(0))
    flops, weight_bytes, calls = chunk_work(runtime, obs)
    log(f"{model.name}: timing the runtime")
    rt_ms = median_chunk_ms(runtime, obs, rounds)
    del runtime
    log(f"{model.name}: timing eager PyTorch")
    eager = torch_policy(package, checkpoint=package.parent / "pretrained_model", threads=limits.threads)
    pt_ms = median_chunk_ms(eager, obs, rounds)
    del eager
    log(f"{model.name}: fresh processes, {CHUNKS} chunks, model cache cold then warm")
    with tempfile.TemporaryDirectory(prefix="edge-cache-") as cache:
        cold = fresh_process(package, obs, Path(cache))
        fresh = fresh_process(package, obs, Path(cache))
    package_bytes = sum(graph_work(p).weight_bytes for p in package.glob("*.onnx"))
    return {"model": model, "rt_ms": rt_ms, "pt_ms": pt_ms, "flops": flops, "bytes": weight_bytes, "calls": calls,
            "limit_ms": limits.limit_ms(flops, weight_bytes), "package_mb": package_bytes / 2 ** 20,
            "cold_first_action_s": cold["first_action_s"], "cold_peak_mb": cold["peak_mb"], **fresh}


def table(r: dict, limits: MachineLimits) -> str:
    bound = "compute" if r["flops"] / limits.sgemm_gflops > r["bytes"] / limits.read_gbps else "bandwidth"
    calls = ", ".join(f"{n} x{k}" for n, k in r["calls"].items())
    memory_ok = r["peak_mb"] <= r["package_mb"] + RSS_MARGIN_MB
    return "\n".join([
        f"**{r['model'].title}** — graphs per chunk: {calls}; {r['flops'] / 1e9:.2f} GFLOP, "
        f"{r['bytes'] / 1e9:.3f} GB of weights read; limit {r['limit_ms']:.1f} ms ({bound}-bound).",
        "",
        "| path | per chunk (ms) | vs eager | % of the limit |",
        "|---|---:|---:|---:|",
        f"| eager PyTorch {torch.__version__} ({limits.threads} threads) | {r['pt_ms']:.1f} | 1.00x | "
        f"{100 * r['limit_ms'] / r['pt_ms']:.0f}% |",
        f"| runtime, ONNX Runtime CPU ({limits.threads} threads) | {r['rt_ms']:.1f} | {r['pt_ms'] / r['rt_ms']:.2f}x | "
        f"{100 * r['limit_ms'] / r['rt_ms']:.0f}% |",
        "",
        f"Fresh process (ONNX Runtime's model cache warm): load_policy {r['load_s']:.2f} s, to the first action "
        f"{r['first_action_s']:.2f} s; peak RSS {r['peak_mb']:.0f} MB for {r['package_mb']:.0f} MB of weights "
        f"(budget weights + {RSS_MARGIN_MB} MB: {'met' if memory_ok else 'NOT met'}; {r['rss_before_mb']:.0f} MB "
        f"before loading); RSS after chunk 2 {r['rss_chunk2_mb']:.0f} MB, after chunk {CHUNKS} "
        f"{r['rss_end_mb']:.0f} MB. The very first load (cache cold, written then): first action after "
        f"{r['cold_first_action_s']:.2f} s, peak RSS {r['cold_peak_mb']:.0f} MB.",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--rounds", type=int, default=5, help="timed chunks per path (median)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    WORKDIR.mkdir(parents=True, exist_ok=True)
    threads = loop_free_cores()  # what the runtime gives a large graph by default; eager PyTorch gets the same
    torch.set_num_threads(threads)
    for name in args.models:
        ensure_package(MODELS[name], log)
    load_before = os.getloadavg()[0]
    limits_before = measure(threads)
    results = [bench(MODELS[name], limits_before, args.rounds, log) for name in args.models]
    limits_after = measure(threads)
    load_after = os.getloadavg()[0]
    limits = MachineLimits(threads, max(limits_before.sgemm_gflops, limits_after.sgemm_gflops),
                           max(limits_before.read_gbps, limits_after.read_gbps))
    for r in results:
        r["limit_ms"] = limits.limit_ms(r["flops"], r["bytes"])
    body = "\n\n".join([
        f"Random weights, LeRobot-layout checkpoints exported with `edge-export`; median of {args.rounds} chunks "
        "after one warm-up per path; the observation is random (uint8 images, float32 states). Machine limits "
        f"measured in this run with ONNX Runtime on {threads} threads: sgemm {limits_before.sgemm_gflops:.0f} / "
        f"{limits_after.sgemm_gflops:.0f} GFLOP/s and weight-streaming bandwidth {limits_before.read_gbps:.1f} / "
        f"{limits_after.read_gbps:.1f} GB/s (before / after the timings; the limits use the higher); that is the "
        "runtime's default for a large graph, all cores but one (one is left to the control loop). Limit = "
        "max(FLOPs / sgemm rate, weight bytes / bandwidth) per chunk. 1-minute load average "
        f"{load_before:.2f} before, {load_after:.2f} after.",
        *(table(r, limits) for r in results),
    ])
    from benchmarks._results import publish
    publish("defaults", "Policies at LeRobot's default sizes: roofline, memory, start-up",
            "benchmarks/bench_defaults.py", body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
