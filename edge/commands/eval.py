"""`edge eval <package> [--episodes 50] [--seed S] ...`: closed-loop success on the simulated reach task.

Runs the package's runner on edge.sim's reach-around-an-obstacle task (20 Hz, far faster than real
time) and prints the success rate, collisions and the share of episodes passing the obstacle on each
side, seams, jerk, stale actions and holding. `--delay-ticks D` executes chunks as the robot does, on a virtual
clock, each merged D ticks after its observation (`--merge` as on the robot); without it, LeRobot's synchronous
select_action. The evaluation itself is edge/sim/eval_command.py, which the workstation's `edge-export eval`
(export/cli.py) runs on the PyTorch networks; this command picks the backend and its precision.
"""

from __future__ import annotations

import argparse
from functools import partial

from edge.errors import CLIError
from edge.runtime.backends import BACKENDS, get_backend
from edge.sim.eval_command import add_eval_arguments, run_evaluation

PYTORCH_MOVED = "edge-export eval PACKAGE [--checkpoint DIR] ... (workstation, needs torch)"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="success rate of a policy package on the simulated reach task")
    add_eval_arguments(p)
    p.add_argument("--backend", default=None, choices=BACKENDS, help="runtime backend (default auto; "
                   "onnxruntime when --precision is given)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default=None,
                   help="fp16 runs the package's FP16 preflight graphs (python -m export.fp16)")
    p.add_argument("--pytorch", action="store_true", help=f"moved: {PYTORCH_MOVED}")
    p.add_argument("--checkpoint", default=None, help=f"moved with --pytorch: {PYTORCH_MOVED}")
    return p


def run(args: argparse.Namespace) -> int:
    if args.pytorch or args.checkpoint is not None:
        flag = "--pytorch" if args.pytorch else "--checkpoint"
        raise CLIError(f"{flag} moved to the workstation CLI: {PYTORCH_MOVED}")
    if args.precision is not None:
        backend = partial(get_backend, args.backend or "onnxruntime", precision=args.precision)
    else:
        backend = partial(get_backend, args.backend or "auto")
    return run_evaluation(args, backend, args.precision or "default")

