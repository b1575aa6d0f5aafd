"""A seeded fuzzer over every input boundary: packages, observations, robot files and calibration files, and the
faults a run must survive (servo resets, a held port, unwritable outputs, signals).

The property, case by case: the input either works, or is refused with the project's own error type
(firmware_bridge, calibration, edge or export tree) whose message names the field or feature; never
another exception type, never a traceback from a command line, never a partial file written, and
never a byte sent to a servo after a refusal (the emulator's instruction counter and write log say).

Cases are derived from (SEED, target, case index), so a violation is reproduced by its index. CI runs
the counts in CI_CASES (seconds); `pytest tests/fuzz --fuzz-cases N -s` runs N per target and prints
the tallies (benchmarks/RESULTS.md has a long run).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

import edge
from calibration import CalibrationError, load_calibration
from edge.cli import main as edge_main
from edge.errors import EdgeError
from edge.robot.robot_file import load_robot_config
from edge.sim.emulated_arm import BUS_SLACK_MS, arm_files
from export.fp16.__main__ import main as fp16_main
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ARM_JOINTS, ServoEmulator
from firmware_bridge.errors import FirmwareBridgeError
from tests.fuzz.mutate import bad_value, damage_archive, damage_bytes, link_package, mutate_document

SEED = 15
CI_CASES = {"manifest": 160, "graph_file": 24, "validation": 30, "observation": 300, "robot_file": 24,
            "calibration_file": 30, "servo_fault": 16}
PROJECT_ERRORS = (EdgeError, CalibrationError, FirmwareBridgeError)
DATA = Path(edge.__file__).parent / "data"
MANIFEST_SECTIONS = ["policy_type", "source", "inputs", "action", "chunking", "graphs", "validation", "policy",
                     "fp16_preflight", "weights", "format", "version"]
ENV_FEATURE = "observation.environment_state=0.1,0.6,0.05,-0.05"


@dataclass
class Ledger:
    """Cases tried for one target and the ones that broke the property."""

    target: str
    violations: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def run(self, case: str, attempt: Callable[[], Any], names: list[str], tally: bool = True) -> BaseException | None:
        """Run one step of a case; a project error must name one of `names`. Returns the project error, if any.
        `tally`: count the outcome (the case's main step)."""
        outcome: BaseException | None = None
        try:
            result = attempt()
        except PROJECT_ERRORS as exc:
            if names and not any(name in str(exc) for name in names):
                self.violations.append(f"{case}: {type(exc).__name__} names none of {names}: {exc}")
            outcome = exc
        except Exception as exc:  # noqa: BLE001 - the property: nothing but the project's own errors
            self.violations.append(f"{case}: {type(exc).__name__}: {exc}")
            outcome = exc
        if tally:
            self.outcomes[type(outcome).__name__ if outcome is not None else
                          f"exit {result}" if isinstance(result, int) else "works"] += 1
        return outcome if isinstance(outcome, PROJECT_ERRORS) else None

    def check(self, case: str, ok: bool, what: str) -> None:
        if not ok:
            self.violations.append(f"{case}: {what}")

    def finish(self, cases: int) -> None:
        print(f"\nfuzz {self.target}: {cases} cases, {len(self.violations)} property violations; outcomes "
              + ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common()))
        assert not self.violations, "\n".join(self.violations[:15])


def rng_for(target: int, case: int) -> np.random.Generator:
    return np.random.default_rng([SEED, target, case])


def cases(request: pytest.FixtureRequest, target: str) -> int:
    return request.config.getoption("--fuzz-cases") or CI_CASES[target]


def real_files(pkg: Path) -> dict[str, bytes]:
    """The package's own files (not the symlinked seed files), by relative path: what a command may have written."""
    return {str(p.relative_to(pkg)): p.read_bytes() for p in sorted(pkg.rglob("*")) if p.is_file() and not p.is_symlink()}


def good_observation(policy: edge.PolicyRunner, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A plausible observation for the loaded manifest: states at the training mean, random camera frames."""
    obs = {}
    for inp in policy.package.manifest.inputs:
        if inp.kind == "image":
            obs[inp.name] = rng.integers(0, 256, inp.shape, dtype=np.uint8)
        else:
            mean = inp.normalization.stats.get("mean")
            obs[inp.name] = (np.asarray(mean, np.float32).reshape(inp.shape) if mean is not None
                             else np.zeros(inp.shape, np.float32))
    return obs


@pytest.fixture(scope="module")
def seeds(export_fixture) -> dict[str, Path]:
    """Real packages: the bundled demos and exports of the shared LeRobot fixtures."""
    out = {f"demo_{f}": DATA / f"demo_{f}" for f in ("act", "diffusion", "vqbet")}
    out.update({case: export_fixture(case) for case in ("act_env", "act_cam", "diffusion_cam", "vqbet_cam")})
    return out


def write_manifest(pkg: Path, data: Any) -> None:
    (pkg / "manifest.json").unlink()
    (pkg / "manifest.json").write_text(json.dumps(data))


def test_fuzz_manifests(request, seeds, tmp_path, capsys):
    """Fields deleted, retyped, set out of range, unknown keys added; the policy is loaded and asked once."""
    ledger = Ledger("manifest")
    names = sorted(seeds)
    originals = {n: json.loads((p / "manifest.json").read_text()) for n, p in seeds.items()}
    n = cases(request, "manifest")
    for i in range(n):
        rng = rng_for(0, i)
        seed = names[int(rng.integers(len(names)))]
        data, what, path = mutate_document(originals[seed], rng, MANIFEST_SECTIONS)
        pkg = link_package(seeds[seed], tmp_path / f"case{i}")
        write_manifest(pkg, data)
        case = f"manifest #{i} {seed}: {what}"

        def attempt() -> None:
            policy = edge.load_policy(pkg, backend="onnxruntime")
            policy.select_action(good_observation(policy, rng))

        error = ledger.run(case, attempt, ["manifest", *(str(k) for k in path if isinstance(k, str))])
        if isinstance(error, edge.PackageError):  # `edge migrate` on a refused manifest: refuses it unchanged
            before = real_files(pkg)
            if run_cli(ledger, case + " (edge migrate)", ["migrate", str(pkg)], capsys, tally=False) == 2:
                ledger.check(case, real_files(pkg) == before, "edge migrate changed files before refusing")
        shutil.rmtree(pkg)
    ledger.finish(n)


def test_fuzz_graph_files(request, seeds, tmp_path):
    """Graph files truncated, bit-flipped, zeroed or replaced, with the manifest's hash left or updated to match."""
    ledger = Ledger("graph_file")
    names = [n for n in sorted(seeds) if n != "act_cam"]  # its 45 MB ResNet adds load time, not new cases
    n = cases(request, "graph_file")
    for i in range(n):
        rng = rng_for(1, i)
        seed = names[int(rng.integers(len(names)))]
        data = json.loads((seeds[seed] / "manifest.json").read_text())
        graph = sorted(data["graphs"])[int(rng.integers(len(data["graphs"])))]
        pkg = link_package(seeds[seed], tmp_path / f"case{i}")
        target = pkg / data["graphs"][graph]["file"]
        damaged, what = damage_bytes(target.read_bytes(), rng)
        target.unlink()
        target.write_bytes(damaged)
        rehash = bool(rng.integers(2))
        if rehash:
            data["graphs"][graph]["sha256"] = edge.runtime.package.sha256_file(target)
        write_manifest(pkg, data)

        def attempt() -> None:
            policy = edge.load_policy(pkg, backend="onnxruntime")
            policy.select_action(good_observation(policy, rng))

        ledger.run(f"graph #{i} {seed}/{graph}: {what}{', rehashed' if rehash else ''}", attempt,
                   [graph, "graph", "policy returned"])
        shutil.rmtree(pkg)
    ledger.finish(n)


def test_fuzz_validation_archives(request, seeds, tmp_path, capsys):
    """Validation samples damaged (bytes, members dropped, reshaped, retyped, pickled); `edge check` and the FP16
    preflight refuse by name and write nothing when they refuse."""
    ledger = Ledger("validation")
    names = [n for n in sorted(seeds) if not n.endswith("_cam")]
    n = cases(request, "validation")
    for i in range(n):
        rng = rng_for(2, i)
        seed = names[int(rng.integers(len(names)))]
        data = json.loads((seeds[seed] / "manifest.json").read_text())
        pkg = link_package(seeds[seed], tmp_path / f"case{i}")
        samples = pkg / data["validation"]["file"]
        damaged, what = damage_archive(samples.read_bytes(), rng)
        samples.unlink()
        samples.write_bytes(damaged)
        rehash = bool(rng.integers(2))
        if rehash:
            data["validation"]["sha256"] = edge.runtime.package.sha256_file(samples)
        write_manifest(pkg, data)
        case = f"validation #{i} {seed}: {what}{', rehashed' if rehash else ''}"
        commands = [("edge check", lambda: edge_main(["check", str(pkg), "--backend", "onnxruntime"]))]
        if seed == "demo_act" and rng.random() < 0.5:
            commands.append(("export.fp16", lambda: fp16_main([str(pkg), "--steps", "2"])))
        for name, command in commands:
            before = real_files(pkg)
            status: list[int] = []

            def attempt() -> int:
                status.append(command())
                return status[0]

            ledger.run(f"{case} ({name})", attempt, [], tally=name == "edge check")
            err = capsys.readouterr().err
            ledger.check(case, "Traceback" not in err, f"{name} printed a traceback")
            if status and status[0] == 2:
                ledger.check(case, "validation samples" in err, f"{name} refused without naming the samples: {err}")
                ledger.check(case, real_files(pkg) == before, f"{name} wrote files before refusing")
            else:
                ledger.check(case, bool(status) and status[0] in (0, 1, 3), f"{name} exit status {status}")
        shutil.rmtree(pkg)
    ledger.finish(n)


def should_refuse(policy: edge.PolicyRunner, obs: Any) -> bool:
    """The oracle: refused unless every input is an array of its exact shape, images uint8, states of a real
    numeric dtype and finite as float32."""
    if not isinstance(obs, dict):
        return True
    for inp in policy.package.manifest.inputs:
        value = obs.get(inp.name)
        if not isinstance(value, np.ndarray) or value.shape != tuple(inp.shape):
            return True
        if inp.kind == "image":
            if value.dtype != np.uint8:
                return True
        elif value.dtype.kind not in "iuf":
            return True
        else:
            with np.errstate(over="ignore"):
                if not np.isfinite(value.astype(np.float32)).all():
                    return True
    return False


@pytest.fixture(scope="module")
def policies(seeds) -> dict[str, edge.PolicyRunner]:
    return {name: edge.load_policy(path, backend="onnxruntime") for name, path in seeds.items()}


def test_fuzz_observations(request, policies):
    """Each key, shape, dtype, NaN/inf and extreme values, on the first call and on later ones."""
    ledger = Ledger("observation")
    names = sorted(policies)
    n = cases(request, "observation")
    for i in range(n):
        rng = rng_for(3, i)
        seed = names[int(rng.integers(len(names)))]
        policy = policies[seed]
        policy.reset()
        calls = int(rng.integers(0, 4))
        for _ in range(calls):
            policy.select_action(good_observation(policy, rng))
        obs: Any = good_observation(policy, rng)
        feature = policy.input_names[int(rng.integers(len(policy.input_names)))]
        roll = rng.random()
        if roll < 0.08:
            del obs[feature]
            what = f"{feature} removed"
        elif roll < 0.12:
            obs, what, feature = [list(obs.values())], "not a dict", "observation"
        else:
            obs[feature], what = bad_value(obs[feature], rng)
            what = f"{feature}: {what}"
        case = f"observation #{i} {seed}, call {calls}: {what}"
        error = ledger.run(case, lambda: policy.select_action(obs), [feature])
        refuse = should_refuse(policy, obs)
        ledger.check(case, isinstance(error, edge.ObservationError) == refuse,
                     f"{'accepted' if refuse else 'refused'}: {error!r}")
        if isinstance(error, edge.PolicyOutputError):
            ledger.check(case, "step" in str(error) and "index" in str(error), f"output error unnamed: {error}")
        ledger.run(case + " (then a good observation)", lambda: policy.select_action(good_observation(policy, rng)),
                   ["policy returned"], tally=False)
    ledger.finish(n)


@pytest.fixture(scope="module")
def arm(tmp_path_factory):
    """An emulated arm kept running for every robot-file and calibration-file case, and its seed files."""
    folder = tmp_path_factory.mktemp("arm")
    with ServoEmulator({i: "xl430-w250" for i in range(1, len(ARM_JOINTS) + 1)}) as emulator:
        robot = arm_files(folder, emulator.port, hz=50.0)
        yield emulator, yaml.safe_load(robot.read_text()), json.loads((folder / "calibration.json").read_text())


def servo_state(emulator: ServoEmulator) -> tuple[int, dict[int, int], dict[int, int]]:
    """Instructions heard so far, each servo's write-log length and present position."""
    return (emulator.instructions, {i: len(s.writes) for i, s in emulator.servos.items()},
            {i: s.get("Present_Position") for i, s in emulator.servos.items()})


def check_refusal_moved_nothing(ledger: Ledger, case: str, emulator: ServoEmulator, before: tuple, file_refused: bool,
                                status: int | None) -> None:
    """After a refusal: no instruction at all if the file itself was refused; otherwise no goal but the start pose,
    and torque off."""
    instructions, writes, present = before
    if status in (0, None):
        return
    if file_refused:
        ledger.check(case, emulator.instructions == instructions,
                     f"{emulator.instructions - instructions} instruction(s) sent after the file was refused")
    for i, servo in emulator.servos.items():
        goals = [v for name, v in list(servo.writes)[writes[i]:] if name == "Goal_Position"]
        ledger.check(case, set(goals) <= {present[i]}, f"servo {i} was sent goals {goals} after a refusal")
        ledger.check(case, servo.get("Torque_Enable") == 0, f"servo {i} left with torque on")


def run_cli(ledger: Ledger, case: str, argv: list[str], capsys, tally: bool = True) -> int | None:  # noqa: ANN001
    status: list[int] = []

    def command() -> int:
        status.append(edge_main(argv))
        return status[0]

    ledger.run(case, command, [], tally)
    err = capsys.readouterr().err
    ledger.check(case, "Traceback" not in err, "the command printed a traceback")
    ledger.check(case, bool(status) and status[0] in (0, 1, 2, 3), f"exit status {status}")
    return status[0] if status else None


def arm_files_for(folder: Path, robot: Any, calibration: Any) -> Path:
    """Write a (mutated) robot file and calibration file into `folder`; returns the robot file."""
    folder.mkdir()
    (folder / "calibration.json").write_text(json.dumps(calibration))
    (folder / "robot.yaml").write_text(yaml.safe_dump(robot))
    return folder / "robot.yaml"


def run_argv(robot_file: Path) -> list[str]:
    """`edge run` of the bundled ACT on the emulated arm for 0.2 s."""
    return ["run", "--robot", str(robot_file), "--policy", str(DATA / "demo_act"), "--quiet", "--duration", "0.2",
            "--feature", ENV_FEATURE, "--bus-slack-ms", str(BUS_SLACK_MS)]


def test_fuzz_robot_files(request, arm, tmp_path, capsys):
    """Robot files mutated and run with `edge run` against the emulated arm."""
    emulator, robot, calibration = arm
    ledger = Ledger("robot_file")
    n = cases(request, "robot_file")
    for i in range(n):
        rng = rng_for(4, i)
        data, what, path = mutate_document(robot, rng, sorted(robot))
        robot_file = arm_files_for(tmp_path / f"case{i}", data, calibration)
        case = f"robot file #{i}: {what}"
        oracle = ledger.run(case + " (load)", lambda: load_robot_config(robot_file),
                            [str(k) for k in path if isinstance(k, str)] + ["robot", "calibration"], tally=False)
        before = servo_state(emulator)
        status = run_cli(ledger, case, run_argv(robot_file), capsys)
        if oracle is not None:
            ledger.check(case, status == 2, f"a refused robot file ran with status {status}")
        check_refusal_moved_nothing(ledger, case, emulator, before, oracle is not None, status)
        shutil.rmtree(robot_file.parent)
    ledger.finish(n)


def test_fuzz_calibration_files(request, arm, tmp_path, capsys):
    """Calibration files mutated; `edge calibrate --check` (and sometimes `edge run`) against the emulated arm."""
    emulator, robot, calibration = arm
    ledger = Ledger("calibration_file")
    n = cases(request, "calibration_file")
    for i in range(n):
        rng = rng_for(5, i)
        data, what, path = mutate_document(calibration, rng, sorted(calibration))
        robot_file = arm_files_for(tmp_path / f"case{i}", robot, data)
        case = f"calibration file #{i}: {what}"
        oracle = ledger.run(case + " (load)", lambda: load_calibration(robot_file.parent / "calibration.json"),
                            [str(k) for k in path if isinstance(k, str)] + ["calibration"], tally=False)
        commands = [["calibrate", "--robot", str(robot_file), "--check"]]  # the first is tallied
        if rng.random() < 0.3:
            commands.append(run_argv(robot_file))
        for argv in commands:
            before = servo_state(emulator)
            status = run_cli(ledger, f"{case} ({argv[0]})", argv, capsys, tally=argv[0] == "calibrate")
            if oracle is not None:
                ledger.check(case, status == 2, f"a refused calibration file gave status {status} in {argv[0]}")
            check_refusal_moved_nothing(ledger, case, emulator, before, oracle is not None, status)
        shutil.rmtree(robot_file.parent)
    ledger.finish(n)


FAULT_CLASSES = ("reset", "held port", "output path", "signal")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def when_running(emulator: ServoEmulator, delay_s: float, act: Callable[[], None],
                 done: threading.Event) -> threading.Thread:
    """On a thread: once every servo has torque on (the run is under way), wait `delay_s`, then `act`; gives up
    when `done` is set (the run ended before it was under way)."""
    def watch() -> None:
        while not all(s.get("Torque_Enable") for s in emulator.servos.values()):
            if done.wait(0.005):
                return
        time.sleep(delay_s)
        act()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_fuzz_servo_faults(request, arm, tmp_path, capsys):
    """`edge run` on the emulated arm with one seeded fault per case: a servo that resets (power loss, factory RAM) at
    a random moment; the port held by another bus; an output file (--summary, --telemetry) that cannot be written;
    SIGINT, SIGTERM or SIGHUP at a random moment. Property: the status says what happened (3, 2, 2, 128 + N), the
    closing line is printed and says the cause once (naming the joint or the signal), a reset joint gets no goal
    after the read-back found it limp (one in flight at most), a refusal sends nothing, torque is off after an
    interrupt, never a traceback."""
    emulator, robot, calibration = arm
    robot = {**robot, "safety": {**robot["safety"], "reaction": "torque_off"}}
    joints = {i: name for i, name in enumerate(ARM_JOINTS, start=1)}
    ledger = Ledger("servo_fault")
    n = cases(request, "servo_fault")
    for i in range(n):
        rng = rng_for(6, i)
        kind = FAULT_CLASSES[i % len(FAULT_CLASSES)]
        robot_file = arm_files_for(tmp_path / f"case{i}", robot, calibration)
        argv = run_argv(robot_file)
        argv[argv.index("--duration") + 1] = "30"  # every case ends by its fault, well before
        argv.append("--write-calibration")  # the module's emulator holds no calibration
        for servo_id in emulator.servos:
            emulator.set_register(servo_id, "Torque_Enable", 0)
        expected, case, holder, watcher = 2, f"servo fault #{i}: {kind}", None, None
        servo_id = int(rng.integers(1, len(joints) + 1))
        powered_up: list[int] = []
        done = threading.Event()
        if kind == "reset":
            def reset(servo_id: int = servo_id) -> None:
                emulator.power_off(servo_id)
                time.sleep(0.03)
                emulator.reappear(servo_id, power_cycled=True)
                powered_up.append(len(emulator.servos[servo_id].writes))
            expected, case = 3, f"{case} of {joints[servo_id]}"
            watcher = when_running(emulator, float(rng.uniform(0.0, 0.6)), reset, done)
        elif kind == "signal":
            sig = STOP_SIGNALS[int(rng.integers(len(STOP_SIGNALS)))]
            expected, case = 128 + sig, f"{case} {sig.name}"
            watcher = when_running(emulator, float(rng.uniform(0.0, 0.6)), lambda sig=sig: os.kill(os.getpid(), sig),
                                   done)
        elif kind == "held port":
            holder = DynamixelBus(emulator.port, {"shoulder_pan": (1, "xl430-w250")}, timeout_slack_ms=BUS_SLACK_MS)
            holder.connect()
        else:
            (tmp_path / f"case{i}" / "plain").write_text("x")
            option = ("--summary", "--telemetry")[int(rng.integers(2))]
            target = [tmp_path / f"case{i}" / "missing" / "out.json", tmp_path / f"case{i}",
                      tmp_path / f"case{i}" / "plain" / "out.json"][int(rng.integers(3))]
            argv += [option, str(target)]
            case = f"{case} {option} {target.relative_to(tmp_path)}"
        before = servo_state(emulator)
        status: list[int] = []
        try:
            ledger.run(case, lambda: status.append(edge_main(argv)), [], tally=False)
        finally:
            done.set()
            if holder is not None:
                holder.disconnect(disable_torque=False)
            if watcher is not None:
                watcher.join(60)
        out, err = capsys.readouterr()
        got = status[0] if status else None
        ledger.outcomes[f"{kind}: exit {got}"] += 1
        ledger.check(case, "Traceback" not in err, "the command printed a traceback")
        ledger.check(case, got == expected, f"exit status {got}, expected {expected}: {err.strip()[-300:]}")
        closing = out.strip().splitlines()[-1] if out.strip() else ""
        if kind == "reset":
            cause = f"servo reset: {joints[servo_id]}"
            ledger.check(case, closing.startswith("stopped by a safety reaction") and cause in closing,
                         f"closing line {closing!r}")
            ledger.check(case, (out + err).count("servo reset") == 1, "the cause was not said exactly once")
            late = [v for name, v in list(emulator.servos[servo_id].writes)[powered_up[0] if powered_up else 0:]
                    if name == "Goal_Position"]
            ledger.check(case, len(late) <= 1, f"the limp joint got {len(late)} goals after its reset")
        elif kind == "signal":
            ledger.check(case, closing == f"interrupted (received {sig.name}): torque off, port released",
                         f"closing line {closing!r}")
            ledger.check(case, (out + err).count(f"received {sig.name}") == 1, "the signal was not said once")
            ledger.check(case, all(s.get("Torque_Enable") == 0 for s in emulator.servos.values()), "torque left on")
        else:
            named = emulator.port if kind == "held port" else option
            ledger.check(case, named in err.strip().splitlines()[-1] if err.strip() else False,
                         f"the refusal does not name {named}: {err.strip()[-200:]}")
            check_refusal_moved_nothing(ledger, case, emulator, before, True, got)
        shutil.rmtree(tmp_path / f"case{i}")
    ledger.finish(n)
