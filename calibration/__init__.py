"""Joint calibration (LeRobot-compatible files and unit conversions) and the robot configuration file. No torch."""

from calibration.calibration_file import (
    MODEL_RESOLUTION,
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
    load_robot_config,
    presets,
    robot_config_from_dict,
    robot_config_to_dict,
    save_robot_config,
)

__all__ = [
    "MODEL_RESOLUTION",
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
    "robot_config_to_dict",
    "save_calibration",
    "save_robot_config",
]
