"""Servo ticks <-> policy units, vectorised over the motors, with LeRobot's Dynamixel formulas.

Policies are trained on what LeRobot's `DynamixelMotorsBus._normalize` produced from `Present_Position` and
their actions go through `_unnormalize` to `Goal_Position`; reproducing both operation for operation (same
float64 expression order, truncation toward zero on the way back) keeps policy units equal to training units.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from calibration.calibration_file import DRIVE_MODE_REVERSE, CalibrationError, MotorCalibration, NormMode
from firmware_bridge import tables


class JointNormalizer:
    """Converts one arm's joint vector (fixed motor order) between raw ticks and policy units.

    `ticks_to_policy` / `policy_to_ticks` are LeRobot's bus `_normalize` / `_unnormalize`, named for the way they
    go: "normalise" in this house is the mean/std of LeRobot's processors (edge/runtime/normalize.py).

    `resolutions` are ticks per turn per motor (default `tables.TICKS_PER_TURN`, every X-series model).

    `apply_drive_mode` is False as in LeRobot's DynamixelMotorsBus: an X-series servo reverses itself through its
    Drive_Mode register, so Present_Position already has the right sign. True reproduces LeRobot's Feetech bus,
    which inverts `range_*` joints in software when `drive_mode` is 1 (never `degrees` joints, in either bus);
    here the direction is bit 0 of the stored Drive_Mode byte (Feetech files only ever hold 0 or 1).
    """

    def __init__(
        self,
        motors: Sequence[str],
        norm_modes: Sequence[NormMode | str],
        calibration: Mapping[str, MotorCalibration],
        resolutions: Sequence[int] | None = None,
        apply_drive_mode: bool = False,
    ) -> None:
        self.motors: tuple[str, ...] = tuple(motors)
        if len(set(self.motors)) != len(self.motors):
            raise CalibrationError(f"duplicate motor names in {list(self.motors)}")
        if len(norm_modes) != len(self.motors):
            raise CalibrationError(f"{len(self.motors)} motors but {len(norm_modes)} normalisation modes")
        resolutions = [tables.TICKS_PER_TURN] * len(self.motors) if resolutions is None else resolutions
        if len(resolutions) != len(self.motors):
            raise CalibrationError(f"{len(self.motors)} motors but {len(resolutions)} resolutions")
        modes = []
        for motor, mode in zip(self.motors, norm_modes):
            try:
                modes.append(NormMode(mode))
            except ValueError:
                allowed = ", ".join(m.value for m in NormMode)
                raise CalibrationError(f"motor '{motor}': unknown norm_mode {mode!r} (expected {allowed})") from None
        for motor, res in zip(self.motors, resolutions):
            if motor not in calibration:
                raise CalibrationError(f"motor '{motor}': no entry in the calibration")
            calibration[motor].validate(motor, res)
        self.norm_modes: tuple[NormMode, ...] = tuple(modes)

        cal = [calibration[m] for m in self.motors]
        self._min = np.array([c.range_min for c in cal], dtype=np.float64)
        self._max = np.array([c.range_max for c in cal], dtype=np.float64)
        self._span = self._max - self._min
        self._mid = (self._min + self._max) / 2
        self._max_res = np.array(resolutions, dtype=np.float64) - 1
        self._degrees = np.array([m is NormMode.DEGREES for m in modes])
        self._m100 = np.array([m is NormMode.RANGE_M100_100 for m in modes])
        inverted = np.array([apply_drive_mode and bool(c.drive_mode & DRIVE_MODE_REVERSE) for c in cal])
        self._flip_m100 = inverted & self._m100
        self._flip_p100 = inverted & np.array([m is NormMode.RANGE_0_100 for m in modes])
        self._lo = self._min.astype(np.int64)
        self._hi = self._max.astype(np.int64)

    @property
    def limits(self) -> dict[str, tuple[int, int]]:
        """Calibrated `{motor: (range_min, range_max)}` in ticks, the joint limits firmware_bridge's SafetyLayer takes."""
        return {m: (int(lo), int(hi)) for m, lo, hi in zip(self.motors, self._lo, self._hi)}

    def ticks_to_policy(self, ticks: np.ndarray | Sequence[int]) -> np.ndarray:
        """Present_Position ticks (motor order) -> policy units as float64.

        Range modes clamp to the calibrated range first; `degrees` does not (as LeRobot), so a joint pushed past
        its recorded limit reads past ±half its range rather than saturating.
        """
        t = self._vector(ticks, "ticks")
        frac = (np.clip(t, self._min, self._max) - self._min) / self._span
        m100 = frac * 200 - 100
        p100 = frac * 100
        deg = (t - self._mid) * 360 / self._max_res
        out = np.where(self._degrees, deg, np.where(self._m100, m100, p100))
        out = np.where(self._flip_m100, -out, out)
        return np.where(self._flip_p100, 100 - out, out)

    def policy_to_ticks(self, values: np.ndarray | Sequence[float]) -> np.ndarray:
        """Policy units (motor order) -> Goal_Position ticks as int64, always inside [range_min, range_max].

        Range modes clamp in policy units then truncate toward zero, exactly as LeRobot. `degrees` follows
        LeRobot's formula too but is additionally clamped to the calibrated range, which LeRobot leaves to the
        servo's position limits.
        """
        v = self._vector(values, "policy values")
        v = np.where(self._flip_m100, -v, v)
        v = np.where(self._flip_p100, 100 - v, v)
        m100 = (np.clip(v, -100.0, 100.0) + 100) / 200 * self._span + self._min
        p100 = np.clip(v, 0.0, 100.0) / 100 * self._span + self._min
        deg = v * self._max_res / 360 + self._mid
        raw = np.trunc(np.where(self._degrees, deg, np.where(self._m100, m100, p100)))
        return np.clip(raw, self._lo, self._hi).astype(np.int64)

    def observation(self, positions: Mapping[str, int]) -> np.ndarray:
        """A `sync_read("Present_Position")` dict -> the float32 state vector the policy was trained on."""
        missing = [m for m in self.motors if m not in positions]
        if missing:
            raise CalibrationError(f"no Present_Position for motor(s) {', '.join(missing)}")
        return self.ticks_to_policy([positions[m] for m in self.motors]).astype(np.float32)

    def goal(self, action: np.ndarray | Sequence[float]) -> dict[str, int]:
        """A policy action vector (motor order) -> `{motor: ticks}` ready for `sync_write("Goal_Position", ...)`."""
        return dict(zip(self.motors, self.policy_to_ticks(action).tolist()))

    def _vector(self, values: np.ndarray | Sequence[float], what: str) -> np.ndarray:
        """Validate shape and finiteness; a bad entry is named by motor so the control loop can report it."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (len(self.motors),):
            raise CalibrationError(f"expected {len(self.motors)} {what} ({', '.join(self.motors)}), got shape {v.shape}")
        bad = ~np.isfinite(v)
        if bad.any():
            names = ", ".join(f"{m}={x}" for m, x, b in zip(self.motors, v.tolist(), bad) if b)
            raise CalibrationError(f"non-finite {what} for motor(s) {names}")
        return v
