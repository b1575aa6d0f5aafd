"""Every YAML and JSON file goes through one strict reader (calibration/strict_files.py), and every package write
is atomic and exclusive (edge/runtime/files.py). Each case runs through the real loader of each file kind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import edge
from calibration import CalibrationError, load_calibration
from calibration.strict_files import MAX_DEPTH, brief, parse_json
from edge.errors import EdgeError, PackageError, RobotConfigError
from edge.exit_status import signals_interrupt
from edge.robot.robot_file import load_robot_config
from edge.runtime import files
from edge.runtime.files import OutputTaken, staged_directory
from edge.runtime.package import load_package
from edge.sim.emulated_arm import arm_files
from export.checkpoint import load_checkpoint
from export.errors import CheckpointError

DEMO = Path(edge.__file__).parent / "data" / "demo_act"


def _robot(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return arm_files(tmp_path, "/dev/null", 20.0)


def _checkpoint(lerobot_fixtures: Path, tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(lerobot_fixtures / "act_env" / "pretrained_model", ckpt)
    return ckpt


def _loaders(tmp_path: Path, lerobot_fixtures: Path):  # noqa: ANN202
    """(file, loader, error type) for each kind of file, each on its own fresh copy: the robot file, a calibration
    file, a manifest, a LeRobot config.json and processor JSON."""
    return [_kinds(tmp_path / str(i), lerobot_fixtures)[i] for i in range(5)]


def _kinds(tmp_path: Path, lerobot_fixtures: Path):  # noqa: ANN202
    robot = _robot(tmp_path / "arm")
    calibration = Path(yaml.safe_load(robot.read_text())["calibration"])
    calibration = calibration if calibration.is_absolute() else robot.parent / calibration
    package = tmp_path / "pkg"
    shutil.copytree(DEMO, package)
    ckpt = _checkpoint(lerobot_fixtures, tmp_path)
    return [(robot, lambda: load_robot_config(robot), RobotConfigError),
            (calibration, lambda: load_calibration(calibration), CalibrationError),
            (package / "manifest.json", lambda: load_package(package), PackageError),
            (ckpt / "config.json", lambda: load_checkpoint(ckpt), CheckpointError),
            (ckpt / "policy_preprocessor.json", lambda: load_checkpoint(ckpt), CheckpointError)]


def _one_line(exc: BaseException, *names: str) -> None:
    text = str(exc)
    assert "\n" not in text and len(text) < 600, text
    for name in names:
        assert name in text, (name, text)


def test_latin1_bytes_are_one_line_naming_the_file(tmp_path, lerobot_fixtures):
    for path, load, error in _loaders(tmp_path, lerobot_fixtures):
        text = path.read_text(encoding="utf-8")
        path.write_bytes(text.replace('"', '"\xe9', 1).encode("latin-1") if path.suffix == ".json"
                         else ("# r\xe9glage\n" + text).encode("latin-1"))
        with pytest.raises(error) as err:
            load()
        _one_line(err.value, path.name, "not UTF-8", "0xe9")


def test_a_key_written_twice_is_refused_naming_it(tmp_path, lerobot_fixtures):
    for path, load, error in _loaders(tmp_path, lerobot_fixtures):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            data = json.loads(text)
            key = next(iter(data))
            twice = text.replace("{", "{" + json.dumps(key) + ": 0,", 1)
        else:
            key = "control_hz"
            twice = text + "\ncontrol_hz: 90\n"
        path.write_text(twice, encoding="utf-8")
        with pytest.raises(error) as err:
            load()
        _one_line(err.value, path.name, repr(key), "twice")
        if path.suffix != ".json":
            assert "lines" in str(err.value)


def test_the_last_of_two_safety_limits_is_not_silently_in_force(tmp_path):
    robot = _robot(tmp_path)
    text = robot.read_text()
    assert "max_step_deg" in text
    robot.write_text(text.replace("safety:\n", "safety:\n  max_step_deg: 4.0\n", 1))
    with pytest.raises(RobotConfigError, match="'max_step_deg' appears twice"):
        load_robot_config(robot)


def test_deep_nesting_and_alias_bombs_are_refused_fast(tmp_path, lerobot_fixtures):
    loaders = _loaders(tmp_path, lerobot_fixtures)
    for path, load, error in loaders:
        deep = "[" * 200_000 + "]" * 200_000
        path.write_text(deep if path.suffix == ".json" else f"port: {deep}\n")
        start = time.process_time()
        with pytest.raises(error) as err:
            load()
        assert time.process_time() - start < 5  # refused before any recursion (generous: a shared CI machine)
        _one_line(err.value, path.name)
    robot = loaders[0][0]
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)) + "port: *i\n"
    robot.write_text(bomb)
    start = time.process_time()
    with pytest.raises(RobotConfigError) as err:
        load_robot_config(robot)
    assert time.process_time() - start < 5
    _one_line(err.value, "aliases")


def test_nesting_up_to_the_bound_parses():
    depth = MAX_DEPTH
    assert parse_json("[" * depth + "]" * depth, "f", ValueError, "x") is not None
    with pytest.raises(ValueError, match="deeper"):
        parse_json("[" * (depth + 1) + "]" * (depth + 1), "f", ValueError, "x")


def test_error_reprs_are_bounded(tmp_path):
    robot = _robot(tmp_path)
    data = yaml.safe_load(robot.read_text())
    data["port"] = list(range(50_000))
    robot.write_text(yaml.safe_dump(data))
    with pytest.raises(RobotConfigError) as err:
        load_robot_config(robot)
    _one_line(err.value, "port")
    robot.write_text(robot.read_text().replace("baudrate:", "baudrate: " + "9" * 5000 + "\nx_baudrate:", 1))
    with pytest.raises(RobotConfigError) as err:  # past Python's int-to-str limit: still a one-line refusal
        load_robot_config(robot)
    _one_line(err.value)
    assert len(brief(10 ** 5000)) < 100 and len(brief("x" * 10 ** 6)) <= 80


def test_a_huge_integer_literal_is_one_line(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(DEMO, package)
    manifest = package / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"version": 2', '"version": ' + "9" * 5000, 1))
    with pytest.raises(PackageError) as err:
        load_package(package)
    _one_line(err.value, "manifest")


# ---- atomic and exclusive writes ---------------------------------------------------------------------------------

def _publish_new(final: Path, content: str, replace: bool = True) -> None:
    with staged_directory(final, replace=replace) as tmp:
        (tmp / "file").write_text(content)


@pytest.mark.parametrize("renameat2", [True, False], ids=["renameat2", "rename-aside"])
def test_replacing_keeps_the_old_folder_until_the_new_is_in_place(tmp_path, monkeypatch, renameat2):
    if not renameat2:
        monkeypatch.setattr(files, "_renameat2", lambda *a: False)
    final = tmp_path / "pkg"
    _publish_new(final, "old")
    _publish_new(final, "new")
    assert (final / "file").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["pkg"]
    with pytest.raises(OutputTaken, match="already exists"):
        _publish_new(final, "newer", replace=False)
    assert (final / "file").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["pkg"]


def test_a_failed_swap_restores_the_old_folder(tmp_path, monkeypatch):
    """Without renameat2: the old folder is moved aside; if the new one cannot be renamed in, it comes back."""
    monkeypatch.setattr(files, "_renameat2", lambda *a: False)
    final = tmp_path / "pkg"
    _publish_new(final, "old")
    real_rename = Path.rename

    def failing(self: Path, target):  # noqa: ANN001, ANN202
        if ".tmp-" in self.name:
            raise OSError(28, "No space left on device")
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError, match="No space"):
        _publish_new(final, "new")
    assert (final / "file").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["pkg"]


def test_an_undeletable_old_package_still_leaves_the_new_one_in_place(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root removes read-only folders")
    final = tmp_path / "pkg"
    _publish_new(final, "old")
    (final / "locked").mkdir()
    (final / "locked" / "f").write_text("x")
    (final / "locked").chmod(0o500)
    try:
        with pytest.warns(RuntimeWarning, match="could not be removed"):
            _publish_new(final, "new")
        assert (final / "file").read_text() == "new"
    finally:
        for p in tmp_path.rglob("locked"):
            p.chmod(0o700)


def test_an_undeletable_old_package_as_root_is_swapped_with_renameat2(tmp_path, monkeypatch):
    """The old folder is never removed before the new one is in place: make removal fail and look."""
    final = tmp_path / "pkg"
    _publish_new(final, "old")
    monkeypatch.setattr(files.shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.warns(RuntimeWarning, match="could not be removed"):
        with staged_directory(final) as tmp:
            (tmp / "file").write_text("new")
    assert (final / "file").read_text() == "new"


def test_a_second_writer_to_one_output_is_refused_with_or_without_replace(tmp_path):
    final = tmp_path / "pkg"
    code = ("import sys, time; from pathlib import Path; from edge.runtime.files import staged_directory\n"
            "with staged_directory(Path(sys.argv[1])) as tmp:\n"
            "    (tmp / 'file').write_text('first'); print('staged', flush=True); time.sleep(60)\n")
    first = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert first.stdout.readline().strip() == "staged"
        for replace in (True, False):
            with pytest.raises(OutputTaken, match="being written by another process"):
                _publish_new(final, "second", replace=replace)
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    finally:
        first.kill()
    _publish_new(final, "third")  # the lock went with the first writer
    assert (final / "file").read_text() == "third"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_clean_up_like_ctrl_c(tmp_path, signum):
    final = tmp_path / "pkg"
    code = ("import sys, time; from pathlib import Path\n"
            "from edge.exit_status import run_command, signals_interrupt\n"
            "from edge.runtime.files import staged_directory\n"
            "def body():\n"
            "    with staged_directory(Path(sys.argv[1])) as tmp:\n"
            "        (tmp / 'graph.onnx').write_text('half'); print('staged', flush=True); time.sleep(60)\n"
            "with signals_interrupt():\n"
            "    sys.exit(run_command(body))\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(final)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == "staged"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signum, err
    assert os.listdir(tmp_path) == [] and "Traceback" not in err
    assert f"received {signal.Signals(signum).name}" in err


def test_signals_interrupt_puts_the_handlers_back():
    before = signal.getsignal(signal.SIGTERM)
    with signals_interrupt():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


# ---- what load_policy loads is what was checked ------------------------------------------------------------------

def test_a_graph_with_external_data_is_refused_even_with_a_matching_hash(tmp_path):
    onnx = pytest.importorskip("onnx")
    package = tmp_path / "pkg"
    shutil.copytree(DEMO, package)
    model = onnx.load(str(package / "act.onnx"))
    onnx.save_model(model, str(package / "act.onnx"), save_as_external_data=True, location="act.onnx.data",
                    size_threshold=0)
    manifest = json.loads((package / "manifest.json").read_text())
    from edge.runtime.package import sha256_file
    manifest["graphs"]["act"]["sha256"] = sha256_file(package / "act.onnx")
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="act.onnx.data.*sha256 does not cover"):
        edge.load_policy(package)


def test_write_manifest_refuses_what_the_loader_would(tmp_path):
    from edge.runtime.package import write_manifest
    package = tmp_path / "pkg"
    shutil.copytree(DEMO, package)
    loaded = load_package(package)
    loaded.manifest.validation.tolerance = 0.0
    before = (package / "manifest.json").read_bytes()
    with pytest.raises(PackageError, match="would refuse"):
        write_manifest(package, loaded.manifest)
    assert (package / "manifest.json").read_bytes() == before


def test_edge_errors_are_the_project_tree():
    assert issubclass(OutputTaken, EdgeError)  # refused writes map to exit status 2 like every other refusal
