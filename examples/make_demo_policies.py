"""Build the bundled demo packages: each family trained on the reach task's expert demonstrations, exported.

    python examples/make_demo_policies.py [--families act diffusion] [--out-dir edge/data] [--eval 50]

For each family: generate EPISODES expert episodes (seeded), train with `export.train.<family>`
for the family's step count (single-threaded, a few minutes each on a laptop CPU), save a
LeRobot-format checkpoint and export it with `export_package` to <out-dir>/demo_<family>. With
--eval N, the package is then run closed-loop on N episodes of the task (edge.evaluate).
Adding a family is one line in FAMILIES.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge import load_policy  # noqa: E402
from edge.evaluate import evaluate  # noqa: E402
from export.families.base import ExportOptions  # noqa: E402
from export.pipeline import export_package  # noqa: E402
from export.train.dataset import generate  # noqa: E402

EPISODES = 250
# family -> optimiser steps for the bundled package (about 2-3 minutes each on one CPU thread).
FAMILIES = {
    "act": 3000,
    "diffusion": 5000,
}


def build(family: str, steps: int, out_dir: Path, episodes: int, seed: int, eval_episodes: int) -> Path:
    trainer = importlib.import_module(f"export.train.{family}")
    data = generate(episodes, seed=seed, images=trainer.IMAGES)
    out = out_dir / f"demo_{family}"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        ckpt = trainer.train_policy(data, Path(tmp) / "pretrained_model", seed=seed, steps=steps)
        print(f"{family}: trained {steps} steps on {episodes} episodes in {time.monotonic() - t0:.0f} s", flush=True)
        export_package(ckpt, out, ExportOptions(samples=2, seed=seed), force=True)
    if eval_episodes:
        r = evaluate(load_policy(out), episodes=eval_episodes)
        print(f"{family}: success {r.success_rate:.2f}, left {r.side_share('left'):.2f}, "
              f"right {r.side_share('right'):.2f} over {r.episodes} episodes", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", choices=sorted(FAMILIES), default=list(FAMILIES))
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parents[1] / "edge" / "data")
    ap.add_argument("--episodes", type=int, default=EPISODES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval", type=int, default=0, metavar="N", help="evaluate each package on N episodes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for family in args.families:
        build(family, FAMILIES[family], args.out_dir, args.episodes, args.seed, args.eval)


if __name__ == "__main__":
    main()
