"""The calibration error tree: one root for everything this package refuses, each message naming the field.

`CalibrationError` is the root: it is raised as such for a calibration file or value that cannot be
used (naming the motor and the field), and `procedure.CalibrationAborted` for an interactive calibration the user
did not finish. A robot file's errors are edge's (`edge.errors.RobotConfigError`): the robot file lives there.
"""

from __future__ import annotations


class CalibrationError(ValueError):
    """Root of every error calibration raises on purpose; raised as such for an unusable calibration file or value."""
