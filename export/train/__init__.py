"""Minimal trainers for the project's LeRobot-compatible models on the simulated reach task (CPU, minutes)."""
