"""The INT8 package option's evidence: behaviour on the reach task, actions on LeRobot's fixtures, speed at default size.

    python benchmarks/eval_int8.py [--episodes 200] [--rounds 5] [--no-write]

For every family, whether or not export/cpu_precision.py offers it yet (the gate below decides INT8_FAMILIES):
1. the bundled reach-task package (edge/data/demo_<family>) and an INT8 copy made with the same code
   (`quantize_package` on a temporary copy), evaluated on the same scenes with the same sampler seed as
   benchmarks/eval_demo.py; the gate: success within 2 points of FP32 and each side's share within 5 points;
2. the LeRobot fixture <family>_cam exported FP32 and copied to INT8: per-action deviation over the fixture's own
   rollout observations (Diffusion with the same initial noise, VQ-BeT with arg-max codes), in policy units and as a
   share of the actions' spread;
3. the default-size package of benchmarks/default_models.py (FP32, as bench_defaults.py exports it) and its INT8
   copy: per-chunk latency against eager PyTorch on the same threads.
Writes the "int8" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_defaults import median_chunk_ms, observation  # noqa: E402
from benchmarks.default_models import MODELS, WORKDIR, ensure_package  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend, loop_free_cores  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from edge.runtime.policies import FAMILIES, runner_class  # noqa: E402
from edge.sim.evaluate import evaluate, runner_options  # noqa: E402
from export.cpu_precision import INT8_FAMILIES, quantize_package  # noqa: E402
from export.families.base import ExportOptions  # noqa: E402
from export.pipeline import export_package  # noqa: E402
from export.torch_backend import torch_policy  # noqa: E402

DATA = ROOT / "edge" / "data"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "lerobot"
POLICY_SEED = 0  # as benchmarks/eval_demo.py


def int8_copy(package: Path, out: Path) -> Path:
    shutil.copytree(package, out)
    quantize_package(out, progress=lambda _m: None, families=tuple(FAMILIES))
    return out


def runner(path: Path, threads: int | None = 1, **options):  # noqa: ANN003, ANN201
    package = load_package(path)
    cls = runner_class(package.manifest.policy_type)
    return cls(package, OnnxRuntimeBackend(["CPUExecutionProvider"], threads=threads),
               **runner_options(cls, **options))


def closed_loop(family: str, tmp: Path, episodes: int, seed: int) -> dict:
    demo = DATA / f"demo_{family}"
    results = {}
    for label, path in (("fp32", demo), ("int8", int8_copy(demo, tmp / f"demo_{family}_int8"))):
        results[label] = evaluate(runner(path, seed=POLICY_SEED), episodes, seed)
    a, b = results["fp32"], results["int8"]
    d_success = 100 * (b.success_rate - a.success_rate)
    d_side = 100 * max(abs(b.side_share(s) - a.side_share(s)) for s in ("left", "right"))
    return {"fp32": a, "int8": b, "d_success": d_success, "d_side": d_side,
            "passed": abs(d_success) <= 2 and d_side <= 5}


def fixture_deviation(family: str, tmp: Path) -> dict:
    """Max and mean |INT8 - FP32| action over the fixture's rollout observations, and max relative to their spread."""
    from safetensors.numpy import load_file

    case = f"{family}_cam"
    fp32 = tmp / case
    export_package(FIXTURES / case / "pretrained_model", fp32, ExportOptions(samples=2), progress=lambda _m: None)
    int8 = int8_copy(fp32, tmp / f"{case}_int8")
    reference = load_file(str(FIXTURES / case / "reference.safetensors"))
    names = [i.name for i in load_package(fp32).manifest.inputs]
    steps = sorted({int(k.split(".")[1]) for k in reference if k.startswith("obs.")})
    options = {"greedy": True} if family == "vqbet" else {}
    policies = [runner(p, **options) for p in (fp32, int8)]
    rng = np.random.default_rng(0)
    chunks = [[], []]
    for t in steps:
        obs = {n: reference[f"obs.{t}.{n}"] for n in names}
        extra = {"noise": rng.standard_normal(policies[0].chunk_shape[1:], dtype=np.float32)} \
            if family == "diffusion" else {}
        for side, policy in enumerate(policies):
            chunks[side].append(policy.predict_action_chunk(obs, **extra))
    a, b = np.array(chunks[0]), np.array(chunks[1])
    dev = np.abs(b - a)
    return {"max": float(dev.max()), "mean": float(dev.mean()), "relative": float(dev.max() / a.std()),
            "steps": len(steps)}


def speed(family: str, rounds: int, log) -> dict:  # noqa: ANN001
    model = MODELS[family]  # the family's LeRobot-defaults model bears its name
    fp32 = ensure_package(model, log)
    int8 = WORKDIR / model.name / "package_int8"
    made, source = int8 / "manifest.json", fp32 / "manifest.json"
    if not made.exists() or made.stat().st_mtime < source.stat().st_mtime:
        shutil.rmtree(int8, ignore_errors=True)
        log(f"{model.name}: INT8 copy")
        int8_copy(fp32, int8)
    threads = loop_free_cores()
    times = {}
    for label, path in (("fp32", fp32), ("int8", int8)):
        policy = runner(path, threads=None)
        obs = observation(policy, np.random.default_rng(0))
        times[label] = median_chunk_ms(policy, obs, rounds)
    eager = torch_policy(fp32, checkpoint=fp32.parent / "pretrained_model", threads=threads)
    times["eager"] = median_chunk_ms(eager, observation(eager, np.random.default_rng(0)), rounds)
    return {"title": model.title, **times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    torch.set_num_threads(loop_free_cores())
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="eval-int8-") as tmp:
        for family in args.families:
            log(f"{family}: closed loop")
            loop = closed_loop(family, Path(tmp), args.episodes, args.seed)
            log(f"{family}: fixture deviation")
            fixture = fixture_deviation(family, Path(tmp))
            log(f"{family}: default-size speed")
            rows.append({"family": family, "loop": loop, "fixture": fixture, "speed": speed(family, args.rounds, log)})
    load_after = os.getloadavg()[0]
    lines = [
        f"INT8 = export/cpu_precision.py (1-D convolutions and Linear layers as MatMulNBits: 8-bit symmetric "
        "weights in blocks of 32, int8 activations; image convolutions stay FP32). Closed loop: the bundled "
        f"package and its INT8 copy, {args.episodes} episodes, scenes from seed {args.seed}, sampler seed "
        f"{POLICY_SEED}, one thread; gate: success within 2 points and each side's share within 5 points of FP32. "
        "Fixture: LeRobot's <family>_cam exported FP32 and copied to INT8, actions over its rollout observations "
        "(Diffusion: same initial noise; VQ-BeT: arg-max codes), policy units; relative = max deviation / the FP32 "
        f"actions' standard deviation. Speed: default-size random-weight packages (benchmarks/default_models.py), "
        f"median of {args.rounds} chunks, {loop_free_cores()} thread(s) for the runtime and for eager PyTorch. "
        f"1-minute load average {load_before:.2f} before, {load_after:.2f} after.",
        "",
        "| family | success FP32 → INT8 | left share FP32 → INT8 | gate | fixture max / mean dev. (relative) | "
        "default model | per chunk FP32 / INT8 / eager (ms) | INT8 vs FP32 | INT8 vs eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lp, fx, sp = r["loop"], r["fixture"], r["speed"]
        lines.append(
            f"| {r['family']} | {100 * lp['fp32'].success_rate:.1f} → {100 * lp['int8'].success_rate:.1f} "
            f"({lp['d_success']:+.1f}) | {100 * lp['fp32'].side_share('left'):.1f} → "
            f"{100 * lp['int8'].side_share('left'):.1f} | {'passed' if lp['passed'] else 'FAILED'} | "
            f"{fx['max']:.3g} / {fx['mean']:.3g} ({100 * fx['relative']:.1f}%) | {sp['title']} | "
            f"{sp['fp32']:.1f} / {sp['int8']:.1f} / {sp['eager']:.1f} | {sp['fp32'] / sp['int8']:.2f}x | "
            f"{sp['eager'] / sp['int8']:.2f}x |")
    passed = [r["family"] for r in rows if r["loop"]["passed"]]
    lines += ["", f"- passed the gate: {passed or 'none'}; offered by `edge-export --cpu-precision int8` "
                  f"(export/cpu_precision.py INT8_FAMILIES): {list(INT8_FAMILIES)}"]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from benchmarks._results import write_section
        write_section("int8", "INT8 on the CPU: fidelity evidence and speed", "benchmarks/eval_int8.py", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
