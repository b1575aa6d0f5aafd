"""Robot owns its cameras, buses and safety layers: it opens them in order and closes each exactly once, in
reverse order, also when opening fails part-way."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from edge.robot.cameras import Camera
from edge.robot.robot import Robot
from edge.robot.robot_file import load_robot_config
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator
from firmware_bridge.safety import SafetyRefused, SafetyStop


class LoggingCamera(Camera):
    """A camera that only records when it is opened and closed."""

    name = "observation.images.top"
    shape = (8, 8, 3)
    max_age_s = 1.0

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self) -> None:
        self.log.append("start")

    def latest(self) -> tuple[np.ndarray, float]:
        return np.zeros(self.shape, np.uint8), time.monotonic()

    def close(self) -> None:
        self.log.append("close")


def torque(emulator: ServoEmulator) -> list[int]:
    return [emulator.register(i, "Torque_Enable") for i in emulator.servos]


def test_everything_opened_is_closed_once(arm: tuple[ServoEmulator, Path]) -> None:
    emulator, robot_file = arm
    log: list[str] = []
    robot = Robot(load_robot_config(robot_file), cameras={LoggingCamera.name: LoggingCamera(log)},
                  bus_timeout_slack_ms=15)
    with robot:
        robot.read()
        robot.write(None)
        assert log == ["start"] and robot.bus.is_connected and torque(emulator) == [1] * 6
    assert log == ["start", "close"]
    assert robot.safety.closed and not robot.bus.is_connected and torque(emulator) == [0] * 6
    robot.__exit__(None, None, None)  # nothing is closed twice
    assert log == ["start", "close"]


def test_a_refused_start_closes_what_was_opened(arm: tuple[ServoEmulator, Path]) -> None:
    emulator, robot_file = arm
    emulator.set_shaft(1, 100)  # shoulder_pan moved by hand outside its calibrated range (1024..3072)
    log: list[str] = []
    robot = Robot(load_robot_config(robot_file), cameras={LoggingCamera.name: LoggingCamera(log)},
                  bus_timeout_slack_ms=15)
    with pytest.raises(SafetyRefused, match="outside their limits"):
        robot.__enter__()
    assert log == ["start", "close"]
    assert robot.safety.closed and not robot.bus.is_connected and torque(emulator) == [0] * 6
    robot.__exit__(None, None, None)
    assert log == ["start", "close"]


class SignalAt:
    """Delivers a real SIGINT when the robot's last opening step (the first observation) runs: the handler then in
    force is the safety layer's, which raises SafetyStop there."""

    def __init__(self, normalizer) -> None:
        self.normalizer = normalizer

    def observation(self, sent):
        signal.raise_signal(signal.SIGINT)
        return self.normalizer.observation(sent)


def test_a_signal_as_opening_ends_closes_what_was_opened(arm: tuple[ServoEmulator, Path]) -> None:
    """`with` calls no __exit__ for an __enter__ that raised: a signal after the torque went on, before __enter__
    returned, must still turn torque off and release the port (it left both on before)."""
    emulator, robot_file = arm
    log: list[str] = []
    robot = Robot(load_robot_config(robot_file), cameras={LoggingCamera.name: LoggingCamera(log)},
                  bus_timeout_slack_ms=15)
    robot.normalizer = SignalAt(robot.normalizer)
    with pytest.raises(SafetyStop):
        with robot:
            pytest.fail("the block must not run")
    assert log == ["start", "close"]
    assert robot.safety.closed and not robot.bus.is_connected and torque(emulator) == [0] * 6


def test_every_bus_comes_from_the_factory_it_is_given(arm: tuple[ServoEmulator, Path]) -> None:
    """The bus seam: `open_bus` builds each bus (here a DynamixelBus subclass that logs its semantic calls), and the
    robot and its safety layer talk to that bus only."""
    emulator, robot_file = arm
    calls: list[str] = []

    class LoggingBus(DynamixelBus):
        def read_positions(self, motors):  # noqa: ANN001, ANN202
            calls.append("read_positions")
            return super().read_positions(motors)

        def write_goals(self, goals):  # noqa: ANN001, ANN202
            calls.append("write_goals")
            return super().write_goals(goals)

    built = []

    def open_bus(config, slack_ms):  # noqa: ANN001, ANN202
        built.append(LoggingBus(config.port, config.bus_motors(), config.baudrate, timeout_slack_ms=slack_ms))
        return built[-1]

    config = load_robot_config(robot_file)
    with Robot(config, open_bus=open_bus, bus_timeout_slack_ms=15) as robot:
        assert robot.bus is built[0] and robot.safety.bus is built[0] and len(built) == len(config.buses)
        calls.clear()
        robot.read()
        robot.write(None)
        assert calls == ["read_positions", "write_goals"] and torque(emulator) == [1] * 6
