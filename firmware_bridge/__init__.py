"""Torch-free link to the arm: the hardware facts (tables.py), Protocol 2.0 packets (protocol.py), the Dynamixel
bus (bus.py) and the safety layer (safety.py). The servo-chain emulator is `firmware_bridge.emulator`, imported
only by whoever serves one."""
