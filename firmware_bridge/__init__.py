"""Torch-free link to the arm: Dynamixel Protocol 2.0 bus, a pty servo-chain emulator, and the safety layer."""

from firmware_bridge.bus import BusError, BusStats, DynamixelBus
from firmware_bridge.emulator import ARM_JOINTS, ServoEmulator, default_arm_motors
from firmware_bridge.safety import SafetyConfig, SafetyCounters, SafetyLayer, SafetyStop, SafetyTripped

__all__ = ["ARM_JOINTS", "BusError", "BusStats", "DynamixelBus", "SafetyConfig", "SafetyCounters", "SafetyLayer",
           "SafetyStop", "SafetyTripped", "ServoEmulator", "default_arm_motors"]
