"""`edge find-port` on a device folder the test builds and unplugs: the port that disappears is named, with the
/dev/serial/by-id/ link resolved before it vanished, and the robot-file line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BY_ID = "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"


def dev_tree(tmp_path: Path) -> Path:
    dev = tmp_path / "dev"
    (dev / "serial" / "by-id").mkdir(parents=True)
    for name in ("tty", "tty0", "ttyS0", "ttyUSB0", "ttyACM0"):
        (dev / name).touch()
    os.symlink("../../ttyUSB0", dev / "serial" / "by-id" / BY_ID)
    return dev


def find_port(dev: Path, unplug) -> subprocess.CompletedProcess:
    """Run the command; at its prompt the test does `unplug()` and presses Enter."""
    proc = subprocess.Popen([sys.executable, "-m", "edge", "find-port", "--dev", str(dev)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    shown = []
    while "press Enter" not in (line := proc.stdout.readline()):
        assert line, proc.stderr.read()
        shown.append(line)
    unplug()
    out, err = proc.communicate("\n", timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(shown) + line + out, err)


def test_the_unplugged_adapter_is_named_with_its_stable_link(tmp_path):
    dev = dev_tree(tmp_path)

    def unplug():
        (dev / "ttyUSB0").unlink()
        (dev / "serial" / "by-id" / BY_ID).unlink()

    result = find_port(dev, unplug)
    assert result.returncode == 0, result.stderr
    assert f"USB serial adapters: {dev}/serial/by-id/{BY_ID} -> {dev}/ttyUSB0" in result.stdout
    assert f"The port of this adapter is '{dev}/ttyUSB0', stable name '{dev}/serial/by-id/{BY_ID}'" in result.stdout
    assert f"  port: {dev}/serial/by-id/{BY_ID}\n" in result.stdout


def test_a_port_without_a_by_id_link_is_named_as_it_is(tmp_path):
    dev = dev_tree(tmp_path)
    result = find_port(dev, lambda: (dev / "ttyACM0").unlink())
    assert result.returncode == 0, result.stderr
    assert f"  port: {dev}/ttyACM0\n" in result.stdout and "has no /dev/serial/by-id/ name" in result.stdout


def test_nothing_or_two_ports_gone_is_refused(tmp_path):
    dev = dev_tree(tmp_path)
    result = find_port(dev, lambda: None)
    assert result.returncode == 2 and "no port disappeared" in result.stderr

    def unplug_two():
        (dev / "ttyUSB0").unlink()
        (dev / "ttyACM0").unlink()

    result = find_port(dev, unplug_two)
    assert result.returncode == 2
    assert f"more than one port disappeared ({dev}/ttyACM0, {dev}/ttyUSB0)" in result.stderr
