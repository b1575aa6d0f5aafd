"""LeRobot 0.4.4's own bus calls (reproduced in lerobot_calls.py) against the emulator, over a pty with the real SDK.

Each test is one of the divergences LeRobot's DynamixelMotorsBus and KochFollower found, checked against the
X-series e-manual (ROBOTIS-GIT/emanual, docs/en/dxl/x/*.md and the _includes they pull in).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from dynamixel_sdk import COMM_SUCCESS

from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator
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


def test_reverse_drive_mode_mirrors_inside_one_turn_and_torque_on_holds(koch) -> None:
    # drive_mode.md: bit 0 reverses the direction of Goal/Present Position; control_table_opmode_note.md: in
    # position mode the position is an absolute value within one turn. LeRobot saw -2112, then a full-turn swing.
    emulator, lerobot = koch
    raw = lerobot.read("Present_Position", "wrist_flex")
    lerobot.write("Drive_Mode", "wrist_flex", 1)
    mirrored = lerobot.read("Present_Position", "wrist_flex")
    assert mirrored == (-raw) % 4096 and 0 <= mirrored <= 4095
    lerobot.write("Torque_Enable", "wrist_flex", 1)  # LeRobot's enable_torque: no goal written first
    time.sleep(0.2)
    assert abs(lerobot.read("Present_Position", "wrist_flex") - mirrored) <= 1
    assert emulator.servos[4].motor.shaft == pytest.approx(raw, abs=1)


def test_leaving_extended_position_mode_reseats_the_position_inside_one_turn(koch) -> None:
    # control_table_opmode_note.md: Present Position is reset to an absolute value within one full rotation when
    # Operating Mode changes to Position Control Mode (and when torque goes on in it).
    emulator, lerobot = koch
    lerobot.write("Operating_Mode", "elbow_flex", 4)
    start = lerobot.read("Present_Position", "elbow_flex")
    lerobot.write("Torque_Enable", "elbow_flex", 1)
    lerobot.write("Goal_Position", "elbow_flex", start + 4000)
    wait_for(lambda: lerobot.read("Present_Position", "elbow_flex") == start + 4000)
    lerobot.write("Torque_Enable", "elbow_flex", 0)
    assert lerobot.read("Present_Position", "elbow_flex") == start + 4000  # multi-turn while in mode 4
    lerobot.write("Operating_Mode", "elbow_flex", 3)
    assert lerobot.read("Present_Position", "elbow_flex") == (start + 4000) % 4096
    lerobot.write("Operating_Mode", "elbow_flex", 4)  # back to 4: the count stays where mode 3 put it
    assert lerobot.read("Present_Position", "elbow_flex") == (start + 4000) % 4096


def test_homing_offset_outside_the_emanual_range_is_refused(koch) -> None:
    # Every X-series page, Homing Offset(20): -1,044,479 ~ 1,044,479.
    emulator, lerobot = koch
    with pytest.raises(LeRobotError) as refused:
        lerobot.write("Homing_Offset", "shoulder_pan", 1_046_000)
    assert refused.value.error == tables.ERR_DATA_RANGE
    assert lerobot.read("Homing_Offset", "shoulder_pan") == 0
    lerobot.write("Homing_Offset", "shoulder_pan", -1_044_479)
    assert lerobot.read("Homing_Offset", "shoulder_pan") == -1_044_479


def test_id_and_baud_rate_change_after_their_status_packet() -> None:
    """LeRobot's setup_motor: write ID at the old ID, Baud_Rate at the new ID; each write gets its status packet."""
    with ServoEmulator({1: "xl330-m288"}, timing=False) as emulator:
        lerobot = LeRobotCalls(emulator.port, {"gripper": 1})
        try:
            lerobot.write("ID", "gripper", 6)  # the status comes back from ID 1
            lerobot.motors["gripper"] = 6
            assert lerobot.broadcast_ping() == {6: 1200}
            lerobot.write("Baud_Rate", "gripper", 1)  # 57,600 bps, answered at 1 Mbps
            assert lerobot.handler.ping(lerobot.port, 6)[1] != COMM_SUCCESS  # nobody at 1 Mbps any more
            assert lerobot.port.setBaudRate(57_600)
            assert lerobot.handler.ping(lerobot.port, 6)[:2] == (1200, COMM_SUCCESS)
            assert lerobot.read("Baud_Rate", "gripper") == 1
        finally:
            lerobot.close()


def test_motion_registers_follow_a_profiled_move(koch) -> None:
    # control_table_moving_2.md, control_table_moving_status.md, Velocity/Position Trajectory(136, 140), Present
    # PWM(124): all report the move while it runs.
    emulator, lerobot = koch
    start = lerobot.read("Present_Position", "shoulder_lift")
    lerobot.write("Profile_Velocity", "shoulder_lift", 40)
    lerobot.write("Profile_Acceleration", "shoulder_lift", 20)
    lerobot.write("Torque_Enable", "shoulder_lift", 1)
    lerobot.write("Goal_Position", "shoulder_lift", start + 600)
    time.sleep(0.3)
    moving = {r: lerobot.read(r, "shoulder_lift") for r in ("Moving", "Moving_Status", "Present_PWM",
                                                            "Velocity_Trajectory", "Position_Trajectory")}
    assert moving["Moving"] == 1
    assert moving["Moving_Status"] & 0x02 and moving["Moving_Status"] & 0x30 == 0x30  # profile ongoing, trapezoid
    assert moving["Present_PWM"] > 0 and moving["Velocity_Trajectory"] == 40
    assert start < moving["Position_Trajectory"] < start + 600
    wait_for(lambda: lerobot.read("Moving", "shoulder_lift") == 0)
    assert lerobot.read("Moving_Status", "shoulder_lift") & 0x03 == 0x01  # in position, profile done
    assert lerobot.read("Velocity_Trajectory", "shoulder_lift") == 0
    assert lerobot.read("Position_Trajectory", "shoulder_lift") == start + 600


def test_lerobot_table_registers_where_the_emanual_has_them(koch) -> None:
    # Feedforward 1st/2nd Gain(90, 88) are on every X page; Acceleration Limit(40) only on the XM430 pages of
    # firmware before v42: an XL430 has nothing at address 40 (protocol2.md, Access Error: an undefined address).
    emulator, lerobot = koch
    lerobot.write("Feedforward_1st_Gain", "elbow_flex", 100)
    lerobot.write("Feedforward_2nd_Gain", "shoulder_pan", 50)
    assert (lerobot.read("Feedforward_1st_Gain", "elbow_flex"), lerobot.read("Feedforward_2nd_Gain", "shoulder_pan")) \
        == (100, 50)
    with pytest.raises(LeRobotError) as refused:
        lerobot.write("Acceleration_Limit", "shoulder_pan", 1000)
    assert refused.value.error == tables.ERR_ACCESS
    with ServoEmulator({1: "xm430-w350"}, timing=False) as xm:
        xm_calls = LeRobotCalls(xm.port, {"joint": 1})
        try:
            assert xm_calls.read("Acceleration_Limit", "joint") == 32767
            xm_calls.write("Acceleration_Limit", "joint", 1000)
            assert xm_calls.read("Acceleration_Limit", "joint") == 1000
        finally:
            xm_calls.close()


def test_lerobot_read_calibration_and_the_bus_read_the_same_registers(koch) -> None:
    """LeRobot stores the raw Drive_Mode (4 = time-based profile); `read_servo_calibration` reads the same."""
    from calibration import MotorCalibration
    from calibration.procedure import read_servo_calibration
    from edge.robot.robot_file.reader import robot_config_from_dict

    emulator, lerobot = koch
    lerobot.write("Drive_Mode", "wrist_flex", 4)
    lerobot.write("Homing_Offset", "gripper", -97)
    theirs = lerobot.read_calibration()
    assert theirs["wrist_flex"]["drive_mode"] == 4
    robot = robot_config_from_dict({
        "port": emulator.port, "baudrate": 1_000_000, "control_hz": 30, "calibration": "unused.json",
        "motors": [{"name": n, "id": i, "model": KOCH_MODELS[i], "norm_mode": "range_m100_100"}
                   for n, i in KOCH_MOTORS.items()],
        "safety": {"max_step_deg": 4.0, "error_window_s": 0.2, "reaction": "hold", "watchdog_ms": 200},
        "features": {"state": "observation.state", "action": "action"}})
    lerobot.close()
    motors = {name: (i, KOCH_MODELS[i]) for name, i in KOCH_MOTORS.items()}
    with DynamixelBus(emulator.port, motors, timeout_slack_ms=EMULATOR_SLACK_MS) as bus:
        ours = read_servo_calibration(bus, robot)
    assert ours == {m: MotorCalibration(**c) for m, c in theirs.items()}
