"""Joint calibration (LeRobot-compatible files and unit conversions) and the robot configuration file. No torch."""

from calibration.calibration_file import (
    MotorCalibration,
    NormMode,
    calibration_from_dict,
    calibration_to_json,
    load_calibration,
    save_calibration,
)
from calibration.errors import CalibrationError, RobotConfigError
from calibration.joint_normalizer import JointNormalizer
from calibration.robot_config import (
    BusConfig,
    CameraConfig,
    FeatureNames,
    MotorConfig,
    RobotConfig,
    SafetyLimits,
)
from calibration.robot_file import load_robot_config, robot_config_from_dict
from calibration.robot_presets import presets

__all__ = [
    "BusConfig",
    "CameraConfig",
    "CalibrationError",
    "FeatureNames",
    "JointNormalizer",
    "MotorCalibration",
    "MotorConfig",
    "NormMode",
    "RobotConfig",
    "RobotConfigError",
    "SafetyLimits",
    "calibration_from_dict",
    "calibration_to_json",
    "load_calibration",
    "load_robot_config",
    "presets",
    "robot_config_from_dict",
    "save_calibration",
]
