"""The robot file: buses, motors, cameras, control rate, safety and features (YAML, or a preset such as `koch`).

`schema.py` holds its dataclasses, `reader.py` reads and checks the YAML into them (every error naming its field),
`presets.py` finds the robot files edge ships (edge/data/robots/). It lives with the robot that runs it, not in
calibration/, which the robot file uses (calibration files, tick conversions) but which never needs the file.
"""

from edge.robot.robot_file.presets import presets
from edge.robot.robot_file.reader import load_robot_config, robot_config_from_dict
from edge.robot.robot_file.schema import BusConfig, CameraConfig, FeatureNames, MotorConfig, RobotConfig, SafetyLimits

__all__ = ["BusConfig", "CameraConfig", "FeatureNames", "MotorConfig", "RobotConfig", "SafetyLimits",
           "load_robot_config", "presets", "robot_config_from_dict"]
