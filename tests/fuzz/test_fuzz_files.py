"""The fuzzer's file-side targets: every YAML/JSON file kind damaged as text and bytes, LeRobot configs retyped and
resized through the exporter, and writers racing and signalled on one output folder.

Property per case: the file loads, or it is refused with the project's own error type in one bounded line naming
the file (or the field), fast; never another exception, never a partial output. For writers: the output folder is
absent or whole (one writer's complete content, from a writer that exited 0), nothing else is left beside it,
and every other writer was refused (exit 2) or interrupted (128 + the signal). Counts as in test_fuzz.py:
CI_CASES, or `--fuzz-cases N`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import edge
from calibration import CalibrationError, load_calibration
from edge.errors import EdgeError
from edge.robot.robot_file import load_robot_config
from edge.robot.telemetry import load_records
from edge.runtime.package import load_package
from edge.sim.emulated_arm import arm_files
from export.checkpoint import load_checkpoint
from export.families.base import ExportOptions
from export.pipeline import export_package
from tests.fuzz.mutate import damage_text, mutate_document
from tests.fuzz.test_fuzz import Ledger, rng_for

CI_CASES = {"text_file": 120, "lerobot_config": 14, "writers": 6, "edge_export_signal": 1}
PROJECT_ERRORS = (EdgeError, CalibrationError)
DATA = Path(edge.__file__).parent / "data"
MAX_MESSAGE = 1000
MAX_SECONDS = 10.0  # per load, on a shared 2-core machine; a bomb or a deep file takes milliseconds


def cases(request: pytest.FixtureRequest, target: str) -> int:
    """CI_CASES, or --fuzz-cases N (a twentieth of it for the real edge-export, which takes seconds a case)."""
    given = request.config.getoption("--fuzz-cases")
    return CI_CASES[target] if not given else max(2, given // 20) if target == "edge_export_signal" else given


@pytest.fixture()
def file_kinds(tmp_path_factory, lerobot_fixtures) -> dict[str, tuple[Path, bool, Callable[[Path], Any]]]:
    """kind -> (seed file, is YAML, load(file's folder copy) ): the robot file, a calibration file, a manifest,
    a LeRobot config.json and processor JSON, a telemetry file."""
    base = tmp_path_factory.mktemp("seeds")
    robot = arm_files(base, "/dev/null", 20.0)
    ckpt = lerobot_fixtures / "act_env" / "pretrained_model"
    telemetry = base / "run.jsonl"
    telemetry.write_text("".join(json.dumps({"t": 0.05 * i, "period_ms": 50.0, "inference_ms": None,
                                             "present": [0.0] * 6, "goal": None}) + "\n" for i in range(5)))
    return {"robot file": (robot, True, lambda f: load_robot_config(f)),
            "calibration file": (base / "calibration.json", False, lambda f: load_calibration(f)),
            "manifest": (DATA / "demo_act" / "manifest.json", False, lambda f: load_package(f.parent)),
            "config.json": (ckpt / "config.json", False, lambda f: load_checkpoint(f.parent)),
            "processor": (ckpt / "policy_preprocessor.json", False, lambda f: load_checkpoint(f.parent)),
            "telemetry": (telemetry, False, lambda f: load_records(f))}


def _copy_beside(seed: Path, folder: Path) -> Path:
    """The seed file's folder, linked file by file into `folder` (the seed file itself a real copy to damage)."""
    folder.mkdir(parents=True)
    for f in seed.parent.iterdir():
        if f.is_file() and f != seed:
            (folder / f.name).symlink_to(f.resolve())
    return folder / seed.name


def test_fuzz_text_files(request, file_kinds, tmp_path):
    """Encodings, stray bytes, duplicate keys, nesting, alias bombs, huge literals, quoted numbers."""
    ledger = Ledger("text_file")
    kinds = sorted(file_kinds)
    n = cases(request, "text_file")
    for i in range(n):
        rng = rng_for(10, i)
        kind = kinds[int(rng.integers(len(kinds)))]
        seed, is_yaml, load = file_kinds[kind]
        damaged, what = damage_text(seed.read_text(encoding="utf-8"), is_yaml, rng)
        if kind == "telemetry" and rng.random() < 0.5:  # damage the last line only: a crash leftover
            good = seed.read_bytes()
            damaged, what = good + damaged.splitlines()[0][: int(rng.integers(1, 40))], "cut last line appended"
        target = _copy_beside(seed, tmp_path / f"case{i}")
        target.write_bytes(damaged)
        case = f"{kind} #{i}: {what}"
        start = time.process_time()
        error = ledger.run(case, lambda: load(target), [target.name, "field", "manifest", "key"])
        took = time.process_time() - start
        ledger.check(case, took < MAX_SECONDS, f"took {took:.1f} s of CPU")
        if error is not None:
            text = str(error)
            ledger.check(case, "\n" not in text and len(text) < MAX_MESSAGE, f"message of {len(text)} chars / lines")
        if what.endswith("written twice") and error is None and kind != "telemetry":
            ledger.check(case, False, "a key written twice was accepted")
        shutil.rmtree(target.parent)
    ledger.finish(n)


def test_fuzz_lerobot_configs(request, lerobot_fixtures, tmp_path):
    """config.json fields (and processor steps) deleted, retyped, resized; exported: works or refused naming the
    field, nothing written at --out on a refusal."""
    ledger = Ledger("lerobot_config")
    seeds = {name: lerobot_fixtures / name / "pretrained_model" for name in ("act_env", "diffusion_cam", "vqbet_cam")}
    n = cases(request, "lerobot_config")
    for i in range(n):
        rng = rng_for(11, i)
        name = sorted(seeds)[int(rng.integers(len(seeds)))]
        ckpt = tmp_path / f"case{i}" / "ckpt"
        shutil.copytree(seeds[name], ckpt)
        file = "config.json" if rng.random() < 0.85 else "policy_preprocessor.json"
        original = json.loads((ckpt / file).read_text())
        data, what, path = mutate_document(original, rng, None if file != "config.json" else sorted(original))
        (ckpt / file).write_text(json.dumps(data))
        out = tmp_path / f"case{i}" / "out"
        case = f"{name} {file} #{i}: {what}"
        names = [str(k) for k in path if isinstance(k, str)] + [file, "config.json", "checkpoint", "statistic"]
        error = ledger.run(case, lambda: export_package(ckpt, out, ExportOptions(samples=1), progress=lambda m: None),
                           [])
        if error is not None:
            ledger.check(case, not out.exists() and sorted(os.listdir(out.parent)) == ["ckpt"],
                         f"files left after a refusal: {sorted(os.listdir(out.parent))}")
            ledger.check(case, "\n" not in str(error) and len(str(error)) < MAX_MESSAGE, "message not one bounded line")
            ledger.check(case, any(k in str(error) for k in names) or "would" in str(error),
                         f"refusal names none of {names[:4]}: {error}")
        shutil.rmtree(tmp_path / f"case{i}")
    ledger.finish(n)


WRITER = """
import sys, time
from pathlib import Path
from edge.exit_status import run_command, signals_interrupt
from edge.runtime.files import staged_directory
final, me, delay, replace = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
def body():
    with staged_directory(final, replace=replace) as tmp:
        for part in range(5):
            (tmp / f"part{part}").write_text(me)
            time.sleep(delay / 5)
with signals_interrupt():
    print("ready", flush=True)  # a signal before this point finds Python's default handlers: not this test's case
    sys.exit(run_command(body))
"""
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def test_fuzz_writers(request, tmp_path):
    """2-4 writers on one output folder, started at random offsets, with or without replace, some signalled."""
    ledger = Ledger("writers")
    n = cases(request, "writers")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for i in range(n):
        rng = rng_for(12, i)
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        final = folder / "pkg"
        if rng.random() < 0.5:  # an old package already there
            final.mkdir()
            (final / "part0").write_text("old")
        procs, signalled = [], {}
        for w in range(int(rng.integers(2, 5))):
            time.sleep(float(rng.uniform(0, 0.3)))
            procs.append(subprocess.Popen([sys.executable, "-c", WRITER, str(final), f"w{w}",
                                           str(float(rng.uniform(0.2, 1.0))), str(int(rng.integers(2)))],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
            procs[-1].stdout.readline()
        time.sleep(float(rng.uniform(0.2, 1.0)))
        for w, proc in enumerate(procs):
            if rng.random() < 0.4 and proc.poll() is None:
                signalled[w] = SIGNALS[int(rng.integers(len(SIGNALS)))]
                proc.send_signal(signalled[w])
        statuses = {w: p.wait(60) for w, p in enumerate(procs)}
        errors = {w: p.stderr.read() for w, p in enumerate(procs)}
        case = f"writers #{i}: {len(procs)} writers, signalled {sorted(signalled)}"
        ledger.outcomes[", ".join(sorted(str(s) for s in statuses.values()))] += 1
        for w, status in statuses.items():
            # a signal after the command returned finds the default handler again: killed, with nothing to clean
            allowed = {0, 2} | ({128 + signalled[w], -signalled[w]} if w in signalled else set())
            ledger.check(case, status in allowed, f"writer {w} exit {status}: {errors[w][-300:]}")
            ledger.check(case, "Traceback" not in errors[w], f"writer {w} traceback: {errors[w][-300:]}")
        leftovers = sorted(set(os.listdir(folder)) - {"pkg"})
        ledger.check(case, not leftovers, f"left beside the output: {leftovers}")
        if final.exists():
            content = {p.read_text() for p in final.iterdir()}
            parts = sorted(p.name for p in final.iterdir())
            winner = next(iter(content))
            whole = len(content) == 1 and (winner == "old" and parts == ["part0"] or parts == [f"part{k}" for k in
                                                                                             range(5)])
            ledger.check(case, whole, f"output mixes or lacks parts: {parts} {content}")
            if winner != "old":  # its writer finished: exit 0, or killed by a signal after it had returned
                w = int(winner[1:])
                ledger.check(case, statuses[w] in (0, -signalled.get(w, 0)), f"{winner} is in place but exited "
                                                                              f"{statuses[w]}")
        shutil.rmtree(folder)
    ledger.finish(n)


def test_fuzz_edge_export_signalled(lerobot_fixtures, tmp_path, request):
    """The real `edge-export`, SIGTERM or SIGHUP at a random moment: nothing is left beside --out."""
    n = cases(request, "edge_export_signal")
    ledger = Ledger("edge_export_signal")
    for i in range(n):
        rng = rng_for(13, i)
        out = tmp_path / f"case{i}" / "pkg"
        out.parent.mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "export.cli", str(lerobot_fixtures / "act_env" /
                                 "pretrained_model"), "--out", str(out), "--samples", "1"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
        sig = SIGNALS[int(rng.integers(2))]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(out.parent.glob(".pkg.tmp-*")) and proc.poll() is None:
            time.sleep(0.05)  # wait until it is staging: the interesting moment
        time.sleep(float(rng.uniform(0, 0.5)))
        proc.send_signal(sig)
        status = proc.wait(120)
        err = proc.stderr.read()
        ledger.outcomes[f"exit {status}"] += 1
        case = f"edge-export #{i} {signal.Signals(sig).name}"
        # -sig: it had finished and returned when the signal came (the default handler is back by then)
        ledger.check(case, status in (0, 128 + sig, -sig), f"exit {status}: {err[-300:]}")
        ledger.check(case, "Traceback" not in err, err[-300:])
        ledger.check(case, sorted(os.listdir(out.parent)) in ([], ["pkg"]), f"left: {os.listdir(out.parent)}")
        if status in (0, -sig):
            ledger.run(case + " (load)", lambda: load_package(out), [], tally=False)
    ledger.finish(n)
