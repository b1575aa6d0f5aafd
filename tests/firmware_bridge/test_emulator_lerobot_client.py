"""LeRobot 0.4.4's own bus calls (reproduced in lerobot_calls.py) against the emulator, over a pty with the real SDK.

Each test is one of the divergences LeRobot's DynamixelMotorsBus and KochFollower found, checked against the
X-series e-manual (ROBOTIS-GIT/emanual, docs/en/dxl/x/*.md and the _includes they pull in).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from firmware_bridge import DynamixelBus, ServoEmulator, tables
from tests.firmware_bridge.conftest import EMULATOR_SLACK_MS
from tests.firmware_bridge.lerobot_calls import KOCH_MODELS, KOCH_MOTORS, LeRobotCalls, LeRobotError, koch_configure


@pytest.fixture
def koch() -> Iterator[tuple[ServoEmulator, LeRobotCalls]]:
    """A Koch follower chain (XL430-W250 x2, XL330-M288 x4) and LeRobot's calls on it."""
    with ServoEmulator(KOCH_MODELS, timing=False) as emulator:
        lerobot = LeRobotCalls(emulator.port, dict(KOCH_MOTORS))
        try:
            yield emulator, lerobot
        finally:
            lerobot.close()


def test_position_limits_apply_only_in_position_mode(koch) -> None:
    # e-manual, _includes/en/dxl/x/operating_mode_xl.md and control_table_goal_position_2.md: Goal Position is
    # bounded by Min/Max Position Limit in Position Control Mode (3); Extended Position (4) and Current-based
    # Position (5) take -1,048,575 ~ 1,048,575 and do not use the limits.
    emulator, lerobot = koch
    for motor in KOCH_MOTORS:
        lerobot.write("Min_Position_Limit", motor, 1000)
        lerobot.write("Max_Position_Limit", motor, 3000)
    with pytest.raises(LeRobotError) as refused:
        lerobot.write("Goal_Position", "gripper", 3500)  # mode 3, the factory default
    assert refused.value.error == tables.ERR_DATA_LIMIT
    koch_configure(lerobot)  # gripper in mode 5, the rest in mode 4, torque on
    present = lerobot.sync_read("Present_Position")
    for motor in KOCH_MOTORS:
        lerobot.write("Goal_Position", motor, present[motor] + 1500)  # past Max_Position_Limit: accepted
        lerobot.write("Goal_Position", motor, present[motor] - 3000)  # below Min_Position_Limit: accepted
    assert emulator.register(6, "Goal_Position") == present["gripper"] - 3000
    lerobot.sync_write("Goal_Position", {m: present[m] for m in KOCH_MOTORS})
    assert lerobot.sync_read("Goal_Position") == present


def test_mixed_chain_answers_every_instruction(koch) -> None:
    """Koch's XL430 + XL330 chain through every instruction the emulator serves, LeRobot's calls and the bus's."""
    emulator, lerobot = koch
    assert lerobot.broadcast_ping() == {1: 1060, 2: 1060, 3: 1200, 4: 1200, 5: 1200, 6: 1200}
    assert {m: lerobot.handler.ping(lerobot.port, i)[0] for m, i in KOCH_MOTORS.items()} == \
        {m: tables.model(KOCH_MODELS[i]).number for m, i in KOCH_MOTORS.items()}
    # Address 126 is Present_Load on the XL430 and Present_Current on the XL330 (same place, same size).
    assert set(lerobot.sync_read("Present_Current")) == set(KOCH_MOTORS)
    koch_configure(lerobot)
    assert lerobot.sync_read("Operating_Mode") == {m: 5 if m == "gripper" else 4 for m in KOCH_MOTORS}
    assert (lerobot.read("Position_P_Gain", "elbow_flex"), lerobot.read("Position_D_Gain", "elbow_flex")) == (1500, 600)
    present = lerobot.sync_read("Present_Position")
    lerobot.sync_write("Goal_Position", {m: p + 40 for m, p in present.items()})
    for servo_id in KOCH_MODELS:
        wait_for(lambda: emulator.register(servo_id, "Present_Position") == present[name_of(servo_id)] + 40)
    calibration = lerobot.read_calibration()
    assert all(c["drive_mode"] == 0 and c["range_max"] == 4095 for c in calibration.values())


def test_mixed_chain_through_the_bus(koch) -> None:
    emulator, lerobot = koch
    lerobot.close()
    motors = {name: (i, KOCH_MODELS[i]) for name, i in KOCH_MOTORS.items()}
    with DynamixelBus(emulator.port, motors, timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
        for fast in (True, False):
            bus.use_fast_sync_read = fast
            assert set(bus.sync_read("Present_Position")) == set(motors)
            assert bus.sync_read("Velocity_Limit") == {n: emulator.register(i, "Velocity_Limit")
                                                        for n, (i, _) in motors.items()}
        with pytest.raises(ValueError, match="'Present_Current' does not exist on 'shoulder_pan' \\(xl430-w250\\)"):
            bus.sync_read("Present_Current")
        assert set(bus.sync_read("Present_Current", ["elbow_flex", "gripper"])) == {"elbow_flex", "gripper"}
        bus.sync_write("Profile_Velocity", {n: 30 for n in motors})
        assert set(bus.sync_read("Profile_Velocity").values()) == {30}


def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def name_of(servo_id: int) -> str:
    return next(n for n, i in KOCH_MOTORS.items() if i == servo_id)
