"""One error root per package, imports only downwards, and one exit-status mapping for every command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import calibration
import edge
import edge.errors
import export.errors
import firmware_bridge.bus
import firmware_bridge.errors
import firmware_bridge.safety
from calibration.procedure import CalibrationAborted
from edge.exit_status import exit_status, run_command
from export.errors import Fp16Error


@pytest.mark.parametrize("error, root", [
    (firmware_bridge.bus.BusError("read", ["j1"], "no reply"), firmware_bridge.errors.FirmwareBridgeError),
    (firmware_bridge.errors.RequestError("unknown motor"), firmware_bridge.errors.FirmwareBridgeError),
    (firmware_bridge.safety.SafetyRefused("limits reversed"), firmware_bridge.errors.FirmwareBridgeError),
    (firmware_bridge.safety.SafetyTripped("servo lost"), firmware_bridge.errors.FirmwareBridgeError),
    (edge.errors.RobotConfigError("robot.yaml"), edge.EdgeError),
    (CalibrationAborted("input closed"), calibration.CalibrationError),
    (edge.PackageError("manifest"), edge.EdgeError),
    (edge.ObservationError("state"), edge.EdgeError),
    (edge.BackendError("ort"), edge.EdgeError),
    (edge.OptionError("seed"), edge.EdgeError),
    (edge.PolicyOutputError("nan"), edge.EdgeError),
    (export.errors.CheckpointError("config.json"), export.errors.ExportError),
    (Fp16Error("graph"), export.errors.ExportError),
])
def test_every_error_has_its_package_root(error, root):
    assert isinstance(error, root)


@pytest.mark.parametrize("error, status", [
    (firmware_bridge.safety.SafetyTripped("servo 3 lost"), 3),
    (edge.PolicyOutputError("non-finite action"), 3),
    (KeyboardInterrupt(), 130),
    (firmware_bridge.safety.SafetyStop("SIGTERM"), 130),
    (firmware_bridge.bus.BusError("connect", ["j1"], "no reply"), 2),
    (firmware_bridge.errors.RequestError("id 300"), 2),
    (calibration.CalibrationError("calibration.json"), 2),
    (edge.errors.RobotConfigError("robot.yaml"), 2),
    (edge.PackageError("manifest"), 2),
    (edge.ObservationError("state"), 2),
    (export.errors.CheckpointError("config.json"), 2),
    (FileNotFoundError(2, "No such file or directory"), 2),
    (ValueError("a bug"), None),
    (KeyError("a bug"), None),
])
def test_exit_status_mapping(error, status):
    assert exit_status(error) == status


def test_run_command_prints_one_line_and_lets_bugs_raise(capsys):
    def refused() -> int:
        raise edge.PackageError("manifest field 'chunking.chunk_size' must be an integer")

    assert run_command(refused) == 2
    assert capsys.readouterr().err == "error: manifest field 'chunking.chunk_size' must be an integer\n"
    assert run_command(lambda: 0) == 0
    with pytest.raises(ZeroDivisionError):
        run_command(lambda: 1 // 0)


def test_cli_refusal_is_one_line_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "edge", "check", str(tmp_path / "missing")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no such package directory" in result.stderr
    assert "Traceback" not in result.stderr
