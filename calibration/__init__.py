"""Joint calibration: LeRobot-compatible calibration files, servo ticks <-> policy units, the procedure. No torch.

Also the project's one strict YAML/JSON reader (`calibration.strict_files`). The robot file (buses, cameras,
safety, rate) is edge's: edge/robot/robot_file/. The names below load on first use (PEP 562), so that
`import edge`, which reads its files through `calibration.strict_files`, loads neither yaml nor firmware_bridge.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "calibration.calibration_file": ("MotorCalibration", "NormMode", "calibration_from_dict", "calibration_to_json",
                                     "load_calibration", "save_calibration"),
    "calibration.errors": ("CalibrationError",),
    "calibration.joint_normalizer": ("JointNormalizer",),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'calibration' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value
