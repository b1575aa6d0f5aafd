"""A simulated task for the 6-servo arm: reach a target behind an obstacle, passing on either side."""

from edge.sim.reach import Expert, ReachEnv, Scene, TaskConfig, render, sample_scene

__all__ = ["Expert", "ReachEnv", "Scene", "TaskConfig", "render", "sample_scene"]
