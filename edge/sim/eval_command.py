"""One closed-loop evaluation as both command lines run it: `edge eval` (ONNX Runtime, TensorRT) and the
workstation's `edge-export eval` (the PyTorch networks), which differ only in the backend they hand over.

`add_eval_arguments` adds the options every evaluation takes; `run_evaluation` resolves the package (a directory
or a bundled demo's name), checks the options against its family, runs `evaluate` with a progress line and prints
the table and the summary (and the JSON). The robot side never imports export: export calls this.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Callable

from edge.errors import CLIError, ResultsNotWritten
from edge.option_types import count, non_negative_int, seed
from edge.robot.chunks import ALL_MERGE_RULES, check_merge_rule
from edge.runtime.backends.base import Backend
from edge.runtime.files import check_writable, write_atomic
from edge.runtime.package import load_package
from edge.runtime.policies import runner_class
from edge.runtime.schedulers import SAMPLERS
from edge.sim.demo_packages import demo_names, resolve_package
from edge.sim.evaluate import COLUMNS, evaluate, format_row, runner_options, text_table


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """The options every evaluation takes, whatever runs the networks (`edge eval`, `edge-export eval`)."""
    p.add_argument("package", help=f"policy package directory, or a bundled demo package: {demo_names()}")
    p.add_argument("--episodes", type=count, default=50, help="episodes (default 50)")
    p.add_argument("--seed", type=seed, default=1000, help="seed of the scenes and of the policy's sampler (default 1000)")
    p.add_argument("--steps", type=count, default=None, help="diffusion: num_inference_steps K")
    p.add_argument("--sampler", choices=SAMPLERS, default=None,
                   help="diffusion: sampler (default the checkpoint's; dpmsolver++ and unipc are the few-step solvers)")
    p.add_argument("--greedy", action="store_true", help="vqbet: arg-max codes instead of sampling")
    p.add_argument("--delay-ticks", type=non_negative_int, default=None, metavar="D",
                   help="execute chunks asynchronously on a virtual clock, each merged D ticks after its observation "
                        "tick (default: LeRobot's synchronous select_action)")
    p.add_argument("--merge", choices=ALL_MERGE_RULES, default=None,
                   help="with --delay-ticks: how overlapping chunks merge (default latest; rtc for diffusion, forecast for act)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def run_evaluation(args: argparse.Namespace, make_backend: Callable[[], Backend], label: str,
                   name: str | None = None) -> int:
    """Evaluate `args.package` on the backend `make_backend` returns; print the table and summary.

    `label` names the configuration in the table ("default", "fp16", "pytorch"), `name` the backend in the log
    and the JSON (default: the backend's own description).
    """
    if args.json is not None:
        check_writable(args.json, "--json")
    if args.merge is not None and args.delay_ticks is None:
        raise CLIError("--merge applies to asynchronous execution: give --delay-ticks D as well")
    merge = args.merge or "latest"
    path = resolve_package(args.package)
    package = load_package(path)
    if args.delay_ticks is not None:
        check_merge_rule(package.manifest.policy_type, merge)
    cls = runner_class(package.manifest.policy_type)
    options = runner_options(cls, seed=args.seed, num_inference_steps=args.steps, sampler=args.sampler,
                             greedy=args.greedy or None, rtc=True if merge == "rtc" else None)
    unused = [flag for flag, value, key in (("--steps", args.steps, "num_inference_steps"),
                                            ("--sampler", args.sampler, "sampler"),
                                            ("--greedy", args.greedy or None, "greedy"))
              if value is not None and key not in options]
    if unused:
        raise CLIError(f"{', '.join(unused)} do(es) not apply to a {package.manifest.policy_type} policy")
    with contextlib.closing(make_backend()) as backend, cls(package, backend, **options) as policy:
        name = name or policy.backend.describe()
        print(f"evaluating {path} ({package.manifest.policy_type}) on {name}: {args.episodes} episodes, "
              f"seed {args.seed}" + "".join(f", {k}={v}" for k, v in options.items() if k != "seed"), file=sys.stderr)
        t0 = time.monotonic()
        tty = sys.stderr.isatty()

        def progress(i: int, r) -> None:  # noqa: ANN001
            if args.quiet:
                return
            line = (f"  episode {i}/{args.episodes}: {r.successes} successes, {r.collisions} collisions, "
                    f"left {r.sides['left']} / right {r.sides['right']}  ({time.monotonic() - t0:.1f} s)")
            sys.stderr.write(("\r" + line if tty else line + "\n"))
            sys.stderr.flush()

        result = evaluate(policy, args.episodes, args.seed, progress=progress, delay_ticks=args.delay_ticks,
                          merge=merge)
        if tty and not args.quiet:
            sys.stderr.write("\n")
        scheduler = getattr(policy, "scheduler", None)  # Diffusion: the sampler and K actually used
        if scheduler is not None:
            label += f"/{scheduler.name}-{scheduler.num_inference_steps}"
        if options.get("greedy"):
            label += "/greedy"
        if args.delay_ticks is not None:
            label += f"/D={args.delay_ticks}/{merge}"
        row = format_row(f"{package.manifest.policy_type}/{label}", result)
        print(text_table([row[:3] + row[4:]], COLUMNS[:3] + COLUMNS[4:]))
        s = result.summary()
        print(f"success {100 * s['success_rate']:.1f}% ({result.successes}/{result.episodes}), collisions "
              f"{result.collisions}, timeouts {result.timeouts}, left {100 * s['left']:.1f}% / right "
              f"{100 * s['right']:.1f}%, {time.monotonic() - t0:.1f} s")
        print(f"seams {s['seams']['count']} (jump p95 {s['seams']['jump_p95']:.2f}, max {s['seams']['jump_max']:.2f} "
              f"policy units), jerk rms {s['jerk_rms']:.0f} units/s^3, dropped {s['dropped']}, holding "
              f"{100 * s['holding_share']:.1f}% of ticks")
        if args.json is not None:
            execution = ({"execution": "synchronous"} if args.delay_ticks is None else
                         {"execution": "asynchronous", "delay_ticks": args.delay_ticks, "merge": merge})
            try:
                write_atomic(args.json, json.dumps({"package": str(path), "backend": name, "options": options,
                                                    **execution, **s}, indent=2))
            except OSError as exc:
                raise ResultsNotWritten(f"--json {args.json} not written: {exc.strerror or exc} (the evaluation "
                                        "itself completed)") from None
        return 0
