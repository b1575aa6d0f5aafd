"""`python -m export.train {act,diffusion,vqbet} --out DIR [--episodes N] [--steps N] [--seed S]`.

Generates expert demonstrations of the reach task and trains one family on them; the result is a
LeRobot-format pretrained_model/ that `edge-export` reads like any other checkpoint. The families are export's
table (export/families/__init__.py); each one's trainer, export/train/<family>.py, defines IMAGES (whether it
needs the camera) and train_policy(data, out, steps, seed) -> Path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge.exit_status import run_command
from edge.option_types import count, seed
from export.families import FAMILIES, known_family
from export.train.dataset import generate
from export.workstation import require_workstation


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m export.train", description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=FAMILIES)
    ap.add_argument("--out", type=Path, required=True, help="pretrained_model directory to write")
    ap.add_argument("--episodes", type=count, default=200, help="expert episodes to train on (default 200)")
    ap.add_argument("--steps", type=count, default=None, help="optimiser steps (default: the family's)")
    ap.add_argument("--seed", type=seed, default=0)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: train(args))


def train(args: argparse.Namespace) -> int:
    """Generate the demonstrations and train the family (needs the workstation's PyTorch)."""
    require_workstation("python -m export.train")
    trainer = known_family(args.family).trainer()
    print(f"generating {args.episodes} expert episodes{' with camera frames' if trainer.IMAGES else ''}",
          file=sys.stderr, flush=True)
    data = generate(args.episodes, seed=args.seed, images=trainer.IMAGES)
    kwargs = {} if args.steps is None else {"steps": args.steps}
    out = trainer.train_policy(data, args.out, seed=args.seed, **kwargs)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
