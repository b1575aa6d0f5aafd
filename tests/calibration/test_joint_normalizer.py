"""Ticks <-> policy units: parity with LeRobot's formulas, round trips, and per-tick input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from calib_lerobot_reference import lerobot_normalize, lerobot_unnormalize

from calibration import CalibrationError, JointNormalizer, MotorCalibration, calibration_from_dict
from edge.robot.robot_file import robot_config_from_dict

MODES = ["degrees", "range_m100_100", "range_0_100", "degrees", "range_m100_100", "range_0_100"]
CALIB = {
    "a": MotorCalibration(1, 0, -709, 43, 1335),
    "b": MotorCalibration(2, 1, -2006, 27, 3608),
    "c": MotorCalibration(3, 0, 1624, 145, 3999),
    "d": MotorCalibration(4, 1, 12, 1000, 3001),
    "e": MotorCalibration(5, 0, 0, 0, 4095),
    "f": MotorCalibration(6, 1, 0, 2031, 3295),
}
NAMES = list(CALIB)


def reference_normalize(ticks, apply_drive_mode):
    return [lerobot_normalize(int(t), mode, CALIB[n].range_min, CALIB[n].range_max, CALIB[n].drive_mode,
                              apply_drive_mode) for t, n, mode in zip(ticks, NAMES, MODES)]


def reference_unnormalize(values, apply_drive_mode):
    return [lerobot_unnormalize(float(v), mode, CALIB[n].range_min, CALIB[n].range_max, CALIB[n].drive_mode,
                                apply_drive_mode) for v, n, mode in zip(values, NAMES, MODES)]


@pytest.mark.parametrize("apply_drive_mode", [False, True])
def test_ticks_to_policy_is_bit_identical_to_lerobots_normalize(apply_drive_mode: bool) -> None:
    norm = JointNormalizer(NAMES, MODES, CALIB, apply_drive_mode=apply_drive_mode)
    rng = np.random.default_rng(0)
    for ticks in rng.integers(-200, 4300, size=(500, 6)):   # includes ticks outside the calibrated ranges
        assert norm.ticks_to_policy(ticks).tolist() == reference_normalize(ticks, apply_drive_mode)


@pytest.mark.parametrize("apply_drive_mode", [False, True])
def test_policy_to_ticks_matches_lerobots_unnormalize_within_range_and_clamps_outside(apply_drive_mode: bool) -> None:
    norm = JointNormalizer(NAMES, MODES, CALIB, apply_drive_mode=apply_drive_mode)
    rng = np.random.default_rng(1)
    values = rng.uniform(-250, 250, size=(500, 6)).astype(np.float32)  # policies emit float32
    for row in values:
        expected = reference_unnormalize(row, apply_drive_mode)
        # LeRobot leaves out-of-range `degrees` goals to the servo limits; we clamp them to the calibrated range.
        expected = [min(CALIB[n].range_max, max(CALIB[n].range_min, t)) for n, t in zip(NAMES, expected)]
        got = norm.policy_to_ticks(row)
        assert got.dtype == np.int64
        assert got.tolist() == expected


def test_policy_to_ticks_truncates_toward_zero_like_int() -> None:
    norm = JointNormalizer(["g"], ["range_0_100"], {"g": MotorCalibration(1, 0, 0, 0, 3)})
    # 50% of span 3 is 1.5 ticks: LeRobot's int() gives 1, rounding would give 2.
    assert norm.policy_to_ticks([50.0]).tolist() == [1]
    assert norm.policy_to_ticks([99.99]).tolist() == [2]


def test_drive_mode_is_ignored_by_default_as_on_lerobots_dynamixel_bus() -> None:
    calib = {"j": MotorCalibration(1, 1, 0, 1000, 3000)}
    assert JointNormalizer(["j"], ["range_m100_100"], calib).ticks_to_policy([1000]).tolist() == [-100.0]
    assert JointNormalizer(["j"], ["range_m100_100"], calib, apply_drive_mode=True).ticks_to_policy([1000]).tolist() == [100.0]
    assert JointNormalizer(["j"], ["degrees"], calib, apply_drive_mode=True).ticks_to_policy([1000]).tolist() == \
        [(1000 - 2000) * 360 / 4095]


def test_degrees_use_mid_range_and_4095() -> None:
    norm = JointNormalizer(["j"], ["degrees"], {"j": MotorCalibration(1, 0, 0, 0, 4095)})
    assert norm.ticks_to_policy([2047]).tolist() == [-0.5 * 360 / 4095]
    assert norm.ticks_to_policy([4095]).tolist() == [180.0]
    assert norm.policy_to_ticks([0.0]).tolist() == [2047]
    assert norm.policy_to_ticks([-180.0]).tolist() == [0]


def test_round_trips() -> None:
    norm = JointNormalizer(NAMES, MODES, CALIB)
    lo = np.array([CALIB[n].range_min for n in NAMES])
    hi = np.array([CALIB[n].range_max for n in NAMES])
    rng = np.random.default_rng(2)
    ticks = rng.integers(lo, hi + 1, size=(300, 6))
    for row in ticks:
        back = norm.policy_to_ticks(norm.ticks_to_policy(row))
        assert np.all(np.abs(back - row) <= 1)  # truncation toward zero may lose at most one tick
    one_tick = np.where(np.array(MODES) == "degrees", 360 / 4095,
                        np.where(np.array(MODES) == "range_m100_100", 200 / (hi - lo), 100 / (hi - lo)))
    for row in ticks:
        units = norm.ticks_to_policy(row)
        assert np.all(np.abs(norm.ticks_to_policy(norm.policy_to_ticks(units)) - units) <= one_tick + 1e-9)


def test_observation_and_goal_for_the_control_loop() -> None:
    norm = JointNormalizer(NAMES, MODES, CALIB)
    positions = {n: 2000 + i for i, n in enumerate(reversed(NAMES))}  # dict order must not matter
    state = norm.observation(positions)
    assert state.dtype == np.float32 and state.shape == (6,)
    assert state.tolist() == np.float32(reference_normalize([positions[n] for n in NAMES], False)).tolist()
    goal = norm.goal(state)
    assert list(goal) == NAMES and all(type(v) is int for v in goal.values())


def test_bad_per_tick_input_names_the_motor() -> None:
    norm = JointNormalizer(NAMES, MODES, CALIB)
    with pytest.raises(CalibrationError, match="no Present_Position for motor.*c"):
        norm.observation({n: 2000 for n in NAMES if n != "c"})
    action = np.zeros(6, dtype=np.float32)
    action[3] = np.nan
    with pytest.raises(CalibrationError, match="non-finite policy values for motor.*d=nan"):
        norm.goal(action)
    with pytest.raises(CalibrationError, match=r"expected 6 policy values .*got shape \(5,\)"):
        norm.goal(np.zeros(5))


def test_construction_errors_name_the_motor() -> None:
    with pytest.raises(CalibrationError, match="motor 'c': unknown norm_mode 'radians'"):
        JointNormalizer(NAMES, MODES[:2] + ["radians"] + MODES[3:], CALIB)
    with pytest.raises(CalibrationError, match="motor 'z': no entry"):
        JointNormalizer(NAMES + ["z"], MODES + ["degrees"], CALIB)
    with pytest.raises(CalibrationError, match="motor 'a': range_min"):
        JointNormalizer(["a"], ["degrees"], {"a": MotorCalibration(1, 0, 0, 9, 9)})


# An SO-100-shaped arm as LeRobot writes its calibration (6 motors, range_m100_100 body, range_0_100 gripper).
SO100_JSON = """{
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1496, "range_min": 772, "range_max": 3324},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 1387, "range_min": 942, "range_max": 3212},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": -993, "range_min": 868, "range_max": 3124},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 1035, "range_min": 869, "range_max": 3263},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1946, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1364, "range_min": 2030, "range_max": 3503}
}"""


@pytest.mark.parametrize("body_mode", ["range_m100_100", "degrees"])
def test_so100_calibration_converts_as_lerobot(tmp_path: Path, body_mode: str) -> None:
    (tmp_path / "so100.json").write_text(SO100_JSON)
    names = list(json.loads(SO100_JSON))
    robot = robot_config_from_dict({
        "port": "/dev/null", "baudrate": 1_000_000, "control_hz": 30, "calibration": "so100.json",
        "motors": [{"name": n, "id": i + 1, "model": "xl430-w250",
                    "norm_mode": "range_0_100" if n == "gripper" else body_mode} for i, n in enumerate(names)],
        "safety": {"max_step_deg": 5, "error_window_s": 0.5, "reaction": "hold", "watchdog_ms": 200},
    }, base_dir=tmp_path)
    norm = robot.normalizer()
    calib = calibration_from_dict(json.loads(SO100_JSON))
    modes = ["range_0_100" if n == "gripper" else body_mode for n in names]
    rng = np.random.default_rng(3)
    for ticks in rng.integers(0, 4096, size=(200, 6)):
        expected = [lerobot_normalize(int(t), m, calib[n].range_min, calib[n].range_max)
                    for t, m, n in zip(ticks, modes, names)]
        state = norm.observation(dict(zip(names, ticks.tolist())))
        assert state.tolist() == np.array(expected, dtype=np.float32).tolist()
        expected_goal = [min(calib[n].range_max, max(calib[n].range_min,
                         lerobot_unnormalize(float(v), m, calib[n].range_min, calib[n].range_max)))
                         for v, m, n in zip(state, modes, names)]
        assert list(norm.goal(state).values()) == expected_goal
