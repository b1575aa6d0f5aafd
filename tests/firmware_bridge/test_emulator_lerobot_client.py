"""LeRobot 0.4.4's own bus calls (reproduced in lerobot_calls.py) against the emulator, over a pty with the real SDK.

Each test is one of the divergences LeRobot's DynamixelMotorsBus and KochFollower found, checked against the
X-series e-manual (ROBOTIS-GIT/emanual, docs/en/dxl/x/*.md and the _includes they pull in).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware_bridge import ServoEmulator, tables
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
