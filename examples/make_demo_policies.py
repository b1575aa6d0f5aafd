"""Build the bundled demo packages: each family trained on the reach task's expert demonstrations, exported.

    python examples/make_demo_policies.py [--families act diffusion vqbet] [--out-dir edge/data] [--eval 50]
                                          [--reuse]

For each family of export's table (export/families/__init__.py): generate the recipe's expert episodes (data
seed 0), train with its trainer (export/train/<family>.py)
(single-threaded; a few minutes per family on a laptop CPU, VQ-BeT about 25), keep the LeRobot-format
checkpoint under build/demo_checkpoints/ and export it with `export_package` to <out-dir>/demo_<family>.
--reuse takes checkpoints already there instead of training them again (to re-export only).

A family whose recipe lists several training seeds is trained once per seed and the candidate that does
best on VALIDATION_EPISODES episodes of the task is bundled: first the one whose rarer side of the
obstacle is taken in at least 30% of the episodes, then the higher success rate. The validation scenes
(seed VALIDATION_SEED) are not the ones `edge eval` and benchmarks/eval_demo.py report on (seed 1000).
This matters for ACT: at inference its latent is 0, so its side is a fixed function of the scene, and
which function a run learns from the 50/50 demonstrations depends on the training seed.
With --eval N, the bundled package is then run closed-loop on N episodes (edge.sim.evaluate, seed 1000).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge import load_policy  # noqa: E402
from edge.sim import TaskConfig  # noqa: E402
from edge.sim.evaluate import EvalResult, evaluate  # noqa: E402
from export.families import FAMILIES, known_family  # noqa: E402
from export.families.base import ExportOptions  # noqa: E402
from export.pipeline import export_package  # noqa: E402
from export.train.dataset import generate  # noqa: E402
from calibration.lerobot_paths import joint_feature_names  # noqa: E402
from edge.sim.reach import TaskConfig  # noqa: E402
from firmware_bridge.emulator import ARM_JOINTS  # noqa: E402

EPISODES = 250
DATA_SEED = 0
VALIDATION_SEED = 2000
VALIDATION_EPISODES = 100
CHECKPOINTS = ROOT / "build" / "demo_checkpoints"


@dataclass(frozen=True)
class Recipe:
    steps: int  # optimiser steps (VQ-BeT: phase-2 steps; phase 1 runs its config's n_vqvae_training_steps)
    seeds: tuple[int, ...] = (0,)  # training seeds; more than one: the best on the validation episodes wins
    weights: str = "float32"  # package weight storage (float16 halves a ResNet18 encoder's 45 MB)
    episodes: int = EPISODES  # expert demonstrations


RECIPES = {  # a family not named here trains with DEFAULT_RECIPE
    "act": Recipe(3000, seeds=(0, 1, 2)),
    "diffusion": Recipe(5000),
    "vqbet": Recipe(3000, weights="float16", episodes=400),
}
DEFAULT_RECIPE = Recipe(3000)


def recipe_for(family: str) -> Recipe:
    return RECIPES.get(family, DEFAULT_RECIPE)


def checkpoint_dir(family: str, seed: int) -> Path:
    return CHECKPOINTS / family / f"seed{seed}" / "pretrained_model"


def train_checkpoint(family: str, seed: int, out: Path | None = None) -> Path:
    """Train `family` with training seed `seed` on the recipe's demonstrations; returns the checkpoint."""
    recipe = recipe_for(family)
    trainer = known_family(family).trainer()
    data = generate(recipe.episodes, seed=DATA_SEED, images=trainer.IMAGES)
    out = out or checkpoint_dir(family, seed)
    t0 = time.monotonic()
    ckpt = trainer.train_policy(data, out, seed=seed, steps=recipe.steps)
    print(f"{family}: trained seed {seed}, {recipe.steps} steps on {recipe.episodes} episodes in "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    return ckpt


def side_goal_met(result: EvalResult) -> bool:
    return min(result.side_share("left"), result.side_share("right")) >= 0.3


def describe(result: EvalResult) -> str:
    return (f"success {100 * result.success_rate:.0f}%, left {100 * result.side_share('left'):.0f}% / right "
            f"{100 * result.side_share('right'):.0f}% over {result.episodes} episodes")


def select(family: str, checkpoints: dict[int, Path], options: ExportOptions) -> Path:
    """The candidate checkpoint that does best on the validation episodes (see the module docstring)."""
    scores = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, ckpt in checkpoints.items():
            package = Path(tmp) / f"seed{seed}"
            export_package(ckpt, package, options, progress=lambda _msg: None)
            result = evaluate(load_policy(package), VALIDATION_EPISODES, seed=VALIDATION_SEED)
            scores[seed] = (side_goal_met(result), result.success_rate)
            print(f"{family}: candidate seed {seed}: validation {describe(result)}", flush=True)
    best = max(scores, key=lambda s: scores[s])
    print(f"{family}: bundling seed {best}", flush=True)
    return checkpoints[best]


def dataset_info() -> Path:
    """The demo data's meta/info.json as LeRobot would write it: the emulated arm's joints, the task's rate, so the
    bundled packages carry joint names (`edge run` checks them)."""
    names = joint_feature_names(ARM_JOINTS)
    path = CHECKPOINTS / "meta" / "info.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"fps": int(TaskConfig.hz), "features": {
        "observation.state": {"dtype": "float32", "shape": [len(names)], "names": names},
        "action": {"dtype": "float32", "shape": [len(names)], "names": names}}}, indent=4))
    return path


def build(family: str, out_dir: Path, eval_episodes: int, reuse: bool) -> Path:
    recipe = recipe_for(family)
    options = ExportOptions(samples=2, seed=DATA_SEED, weights=recipe.weights, fps=int(TaskConfig().hz))
    checkpoints = {}
    for seed in recipe.seeds:
        existing = checkpoint_dir(family, seed)
        if reuse and (existing / "config.json").is_file():
            print(f"{family}: reusing {existing}", flush=True)
            checkpoints[seed] = existing
        else:
            checkpoints[seed] = train_checkpoint(family, seed)
    ckpt = select(family, checkpoints, options) if len(checkpoints) > 1 else checkpoints[recipe.seeds[0]]
    out = out_dir / f"demo_{family}"
    export_package(ckpt, out, options, force=True, dataset_info=dataset_info())
    if eval_episodes:
        print(f"{family}: bundled package: {describe(evaluate(load_policy(out), episodes=eval_episodes))}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", choices=list(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "edge" / "data")
    ap.add_argument("--reuse", action="store_true", help="reuse checkpoints under build/demo_checkpoints/")
    ap.add_argument("--eval", type=int, default=0, metavar="N", help="evaluate each bundled package on N episodes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for family in args.families:
        build(family, args.out_dir, args.eval, args.reuse)


if __name__ == "__main__":
    main()
