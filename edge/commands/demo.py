"""`edge demo [--policy act|diffusion|vqbet] [--seed S]`: a bundled trained policy on an emulated arm, no robot.

The policy does the simulated reach task (edge.sim): an emulated 6-servo arm starts at a scene's
start pose, the policy gets the scene's target and obstacle as `observation.environment_state`
(and, for image policies, a simulated top-down camera of the present arm), and runs at the task's
20 Hz through the real serial stack and safety layer. A tracker follows the tool point the servos' present
positions give, tick by tick, and says at the end whether the target was reached and on which side of the
obstacle (nothing per tick is kept).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

import edge
from edge.commands.shared import add_loop_arguments, apply_merge, options_from
from edge.errors import CLIError, ResultsNotWritten
from edge.option_types import only_with, seed
from edge.runtime.files import check_writable, write_atomic
from edge.sim.demo_packages import bundled
from edge.sim.reach import ENV_DIM, TaskConfig, joints_for, sample_scene
from edge.sim.tracker import ReachTracker, describe

ENV_STATE = "observation.environment_state"
DEFAULT_DURATION_S = 6.0  # an episode is at most TaskConfig.max_steps = 120 ticks = 6 s at 20 Hz


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("demo", help="run a bundled trained policy on an emulated arm (no robot, no GPU needed)")
    p.add_argument("--policy", choices=[package.name for package in bundled()], default="act",
                   help="the bundled package to run (default act)")
    p.add_argument("--package", type=Path, default=None,
                   help="run this reach-task policy package instead of a bundled one")
    p.add_argument("--seed", type=seed, default=0, help="scene (start, target, obstacle) seed (default 0)")
    p.add_argument("--outcome", type=Path, default=None,
                   help="write the episode's outcome (scene, reached, side) as JSON")
    add_loop_arguments(p, hz_default=TaskConfig.hz, duration_default=DEFAULT_DURATION_S)
    only_with(p, "--policy", "a bundled policy, not with --package", when=lambda args: args.package is None)
    return p


def place_arm(emulator: Any, robot_config: Any, joints: np.ndarray) -> None:
    """Move the (torque-off) emulated servos to `joints` (policy units) before the robot connects."""
    ticks = robot_config.normalizer().policy_to_ticks(joints)
    ids = {m.name: m.id for m in robot_config.motors}
    for name, tick in zip(robot_config.normalizer().motors, ticks):
        emulator.set_shaft(ids[name], float(tick))


def run(args: argparse.Namespace) -> int:
    from edge.robot.drive import drive
    from edge.robot.robot import Robot
    from edge.sim.emulated_arm import BUS_SLACK_MS, emulated_arm
    from edge.sim.rendered_camera import SimCamera

    if args.outcome is not None:
        check_writable(args.outcome, "--outcome")
    packages = {p.name: p.path for p in bundled()}
    if args.package is not None:
        package = args.package
    elif args.policy not in packages:
        raise CLIError(f"no bundled {args.policy} policy in this install (have: {', '.join(packages) or 'none'})")
    else:
        package = packages[args.policy]
    scene = sample_scene(np.random.default_rng(args.seed))
    print(f"scene {args.seed}: start {np.round(scene.start, 1).tolist()}, target {np.round(scene.target, 1).tolist()}, "
          f"obstacle {np.round(scene.obstacle, 1).tolist()}")
    print(f"starting an emulated 6-servo arm ({args.hz:g} Hz, {args.duration:g} s)")
    with edge.load_policy(package, backend=args.backend) as policy:
        inputs = {i.name: i for i in policy.package.manifest.inputs}
        if ENV_STATE in inputs and inputs[ENV_STATE].shape != [ENV_DIM]:
            raise CLIError(f"{package} is not a reach-task policy: its {ENV_STATE} input is "
                           f"{inputs[ENV_STATE].shape}, the task gives [{ENV_DIM}] "
                           "(target x, y and obstacle x, y, /100)")
        if ENV_STATE not in inputs and not any(i.kind == "image" for i in inputs.values()):
            raise CLIError(f"{package} cannot see the task: it takes neither {ENV_STATE} nor a camera image")
        static = {ENV_STATE: scene.env_state()} if ENV_STATE in inputs else {}
        apply_merge(policy, args.merge)
        tracker = ReachTracker(scene)
        with emulated_arm(hz=args.hz) as (robot_config, emulator):
            print(f"emulated servos on {emulator.port}")
            place_arm(emulator, robot_config, joints_for(scene.start))
            cameras = {i.name: SimCamera(i.name, scene, lambda: robot.present_joints(), i.shape[0])
                       for i in inputs.values() if i.kind == "image"}  # drawn at the robot's latest reading
            robot = Robot(robot_config, cameras=cameras, static_features=static, bus_timeout_slack_ms=BUS_SLACK_MS)
            drive(robot, policy, options_from(args, args.hz), on_tick=lambda r: tracker.update(r.present[:2]))
    outcome = tracker.outcome()
    print(describe(outcome))
    if args.outcome is not None:
        task = {"seed": args.seed, "policy": args.policy if args.package is None else str(args.package), **outcome,
                "scene": {k: getattr(scene, k).tolist() for k in ("start", "target", "obstacle")}}
        try:
            write_atomic(Path(args.outcome), json.dumps(task, indent=2))
        except OSError as exc:
            raise ResultsNotWritten(f"outcome {args.outcome} not written: {exc.strerror or exc} "
                                    "(the episode itself completed)") from None
    return 0
