"""Closed-loop fidelity of the bundled demo policies on the simulated reach task (issue 9, item 4).

    python benchmarks/eval_demo.py [--episodes 200] [--seed 1000] [--families act diffusion vqbet]
                                   [--checkpoint act=DIR ...] [--no-write]

For each bundled trained package (edge/data/demo_<family>): the PyTorch policy (the same runner on
the PyTorch networks, export/torch_backend.py), ONNX Runtime FP32, the FP16 preflight graphs
(preflight run on a temporary copy when the package has none; edge/data is never modified) and,
for Diffusion, DDIM at K = 2, 4, 10 on both PyTorch and ONNX Runtime. Every configuration runs the
same scenes (--seed) and the same sampler seed, single-threaded on the CPU. The table goes to
benchmarks/RESULTS.md, section "eval".

The PyTorch policy needs the package's source checkpoint: --checkpoint, else the manifest's source
(examples/make_demo_policies.py keeps it under build/demo_checkpoints/), else it is regenerated with
that script's recipe (same episodes and steps, each of the recipe's training seeds in turn, one
thread) into /tmp/edge-eval-checkpoints. A checkpoint is used only if its content hash equals the
manifest's source.sha256; otherwise the PyTorch rows say "n/a" and the deltas are against nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.errors import EdgeError  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from edge.runtime.policies import FAMILIES, runner_class  # noqa: E402
from edge.sim.evaluate import COLUMNS as EVAL_COLUMNS  # noqa: E402
from edge.sim.evaluate import EvalResult, evaluate, format_row, markdown_table, runner_options, text_table
from export.checkpoint import load_checkpoint  # noqa: E402
from export.torch_backend import TorchBackend, source_checkpoint  # noqa: E402

DATA = ROOT / "edge" / "data"
DDIM_STEPS = (2, 4, 10)
CACHE = Path(tempfile.gettempdir()) / "edge-eval-checkpoints"
POLICY_SEED = 0
COLUMNS = (*EVAL_COLUMNS, "same outcome as PyTorch")


@dataclass
class Config:
    name: str
    backend: str  # "pytorch" | "fp32" | "fp16"
    options: dict[str, Any]
    reference: str | None  # name of the PyTorch configuration it is compared with


def configurations(family: str, package) -> list[Config]:  # noqa: ANN001
    if family != "diffusion":
        configs = [Config("PyTorch", "pytorch", {}, None), Config("ONNX Runtime FP32", "fp32", {}, "PyTorch"),
                   Config("FP16 preflight graphs", "fp16", {}, "PyTorch")]
        if family == "vqbet":  # sampled codes by default; arg-max codes too
            configs += [Config("PyTorch (greedy codes)", "pytorch", {"greedy": True}, None),
                        Config("ONNX Runtime FP32 (greedy codes)", "fp32", {"greedy": True}, "PyTorch (greedy codes)")]
        return configs
    default_k = package.manifest.policy.num_inference_steps
    sampler = package.manifest.policy.sampler
    configs = [Config(f"PyTorch ({sampler.upper()} {default_k})", "pytorch", {}, None),
               Config(f"ONNX Runtime FP32 ({sampler.upper()} {default_k})", "fp32", {}, f"PyTorch ({sampler.upper()} {default_k})"),
               Config(f"FP16 preflight graphs ({sampler.upper()} {default_k})", "fp16", {}, f"PyTorch ({sampler.upper()} {default_k})")]
    for k in DDIM_STEPS:
        if sampler == "ddim" and k == default_k:
            continue
        opts = {"sampler": "ddim", "num_inference_steps": k}
        configs += [Config(f"PyTorch (DDIM {k})", "pytorch", opts, None),
                    Config(f"ONNX Runtime FP32 (DDIM {k})", "fp32", opts, f"PyTorch (DDIM {k})")]
    return configs


def _recipe() -> Any:
    spec = importlib.util.spec_from_file_location("make_demo_policies", ROOT / "examples" / "make_demo_policies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_checkpoint(family: str, package, given: Path | None, log) -> tuple[Path | None, str]:  # noqa: ANN001
    """The package's checkpoint (verified by hash) and how it was found; (None, why) if unavailable."""
    want = package.manifest.source.sha256
    candidates = [(given, "given")] if given else []
    candidates += [(source_checkpoint(package), "manifest source"),
                   (CACHE / want[:16] / "pretrained_model", "regenerated earlier")]
    for path, how in candidates:
        if path is not None and path.exists():
            if load_checkpoint(path).sha256 == want:
                return path, f"{how} {path} (sha256 equals the manifest's source.sha256)"
            log(f"{family}: {path} ({how}) is not the package's checkpoint (sha256 differs)")
    try:
        recipe = _recipe()
        seeds = recipe.recipe_for(family).seeds
    except (KeyError, AttributeError, OSError) as exc:
        return None, f"no checkpoint and no recipe to regenerate it ({exc})"
    out = CACHE / want[:16] / "pretrained_model"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in seeds:
            log(f"{family}: regenerating the checkpoint of training seed {seed} (examples/make_demo_policies.py)")
            recipe.train_checkpoint(family, seed, out)
            if load_checkpoint(out).sha256 == want:
                return out, f"regenerated with examples/make_demo_policies.py, training seed {seed} (hash verified)"
    finally:
        torch.set_num_threads(threads)
    return None, "regenerated checkpoints' hashes differ from the manifest's (training not reproducible here)"


def with_fp16(path: Path, tmp: Path, log, notes: list[str]) -> Path:  # noqa: ANN001
    """The package itself if it has FP16 graphs, else a temporary copy with the preflight run on it."""
    recorded = load_package(path).manifest.fp16_preflight
    if recorded is not None and recorded.graphs:
        notes.append(f"{path.name}: FP16 graphs from the package's own preflight")
        return path
    from export.fp16.preflight import preflight
    copy = tmp / path.name
    shutil.copytree(path, copy)
    record = preflight(copy, progress=lambda m: None)
    line = (f"{path.name}: FP16 preflight run on a temporary copy: {'passed' if record['ok'] else 'FAILED'} "
            f"(worst normalised action error {record['worst_step_normalized_action_error']:.2e})")
    log(line)
    notes.append(line)
    return copy


def run_config(package_path: Path, config: Config, checkpoint: Path | None, episodes: int, seed: int) -> EvalResult:
    package = load_package(package_path)
    cls = runner_class(package.manifest.policy_type)
    if config.backend == "pytorch":
        backend = TorchBackend(checkpoint, threads=1)
    else:
        backend = OnnxRuntimeBackend(["CPUExecutionProvider"], threads=1, precision=config.backend)
    policy = cls(package, backend, **runner_options(cls, seed=POLICY_SEED, **config.options))
    return evaluate(policy, episodes, seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=200, help="per configuration (default 200; issue 9 asks >= 50)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--data", type=Path, default=DATA, help="directory with demo_<family> packages")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="FAMILY=DIR")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    given = {k: Path(v) for k, _, v in (c.partition("=") for c in args.checkpoint)}
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    rows, notes = [], []
    goals = []
    with tempfile.TemporaryDirectory(prefix="eval-demo-") as tmp:
        for family in args.families:
            path = args.data / f"demo_{family}"
            if not (path / "manifest.json").is_file():
                notes.append(f"{family}: no bundled package ({path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}), not evaluated")
                continue
            package = load_package(path)
            if package.manifest.policy_type != family:
                notes.append(f"{family}: {path} holds a {package.manifest.policy_type} package, skipped")
                continue
            checkpoint, how = source_checkpoint(family, package, given.get(family), log)
            if package.manifest.weights != "float32":
                notes.append(f"{family}: the package stores {package.manifest.weights}-rounded weights (computed in "
                             "float32): its rows run those, the PyTorch rows the checkpoint's float32 weights")
            notes.append(f"{family}: PyTorch checkpoint: {how}")
            fp16_path = with_fp16(path, Path(tmp), log, notes)
            results: dict[str, EvalResult] = {}
            for config in configurations(family, package):
                if config.backend == "pytorch" and checkpoint is None:
                    rows.append([f"{family}: {config.name}", "n/a", "n/a", "—", "n/a", "n/a", "n/a", "n/a", "—"])
                    continue
                t0 = time.monotonic()
                try:
                    result = run_config(fp16_path if config.backend == "fp16" else path, config, checkpoint,
                                        args.episodes, args.seed)
                except EdgeError as exc:
                    notes.append(f"{family}: {config.name} failed: {exc}")
                    continue
                results[config.name] = result
                reference = results.get(config.reference or "")
                same = "—" if reference is None else str(sum(a == b for a, b in zip(result.outcomes, reference.outcomes)))
                rows.append(format_row(f"{family}: {config.name}", result, reference) + [same])
                log(f"{family}: {config.name}: success {100 * result.success_rate:.0f}%, left "
                    f"{100 * result.side_share('left'):.0f}%, {time.monotonic() - t0:.0f} s")
                if config.reference and config.reference in results:
                    delta = 100 * abs(result.success_rate - results[config.reference].success_rate)
                    goals.append(f"{family} {config.name}: |Δ| = {delta:.1f} points "
                                 f"({'within' if delta <= 2 else 'OUTSIDE'} 2)")
                if config.backend == "fp32" and not config.options:
                    low = min(result.side_share("left"), result.side_share("right"))
                    goals.append(f"{family} exported (FP32): smaller side share {100 * low:.0f}% "
                                 f"({'meets' if low >= 0.3 else 'BELOW'} 30%)")
    print(text_table(rows, COLUMNS))
    body = (f"{args.episodes} episodes per configuration, scenes from seed {args.seed} (identical across "
            f"configurations), sampler seed {POLICY_SEED}, CPU, one thread. Success: the tool point within "
            "6 units of the target without entering the obstacle, within 120 ticks (6 s at 20 Hz). "
            "Left/right: which side of the start→target line the path passed the obstacle on (all episodes). "
            "Δ: success points vs the PyTorch policy at the same sampler settings; same outcome: episodes whose "
            "success, collision and side all equal the PyTorch policy's on the same scene. VQ-BeT's sampled codes "
            "come from one random stream over all episodes (seeded once, as a LeRobot rollout would): once a draw that "
            "came out differently changes an episode's length, every later episode draws different numbers, so for sampled configurations 'same outcome' "
            "after that compares independent samples; the greedy rows compare like for like.\n\n"
            + markdown_table(rows, COLUMNS) + "\n\n" + "\n".join(f"- {n}" for n in notes + goals))
    print("\n".join(notes + goals))
    if not args.no_write:
        from benchmarks._results import write_section
        write_section("eval", "Closed-loop fidelity on the simulated reach task", "benchmarks/eval_demo.py", body)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
