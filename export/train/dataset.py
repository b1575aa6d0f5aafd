"""Demonstrations of the reach task from the two-mode expert, and LeRobot-style training windows.

A dataset is a dict of per-frame arrays: observation.state (N, 6), observation.environment_state
(N, 4), optionally observation.images.top (N, H, W, 3) uint8, action (N, 6), episode_index (N,),
frame_index (N,), and side (N,) (the expert's side for the frame's episode, for checks only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.sim import Expert, ReachEnv, TaskConfig, sample_scene

STATE, ENV, IMAGE, ACTION = ("observation.state", "observation.environment_state", "observation.images.top", "action")


def generate(episodes: int, seed: int = 0, images: bool = False, config: TaskConfig = TaskConfig()
             ) -> dict[str, np.ndarray]:
    """Roll the expert out for `episodes` episodes (observation before each action, as LeRobot records)."""
    rng = np.random.default_rng(seed)
    env, expert = ReachEnv(config), Expert(config, rng)
    frames: dict[str, list] = {k: [] for k in (STATE, ENV, ACTION, "episode_index", "frame_index", "side")}
    if images:
        frames[IMAGE] = []
    for episode in range(episodes):
        scene = sample_scene(rng)
        env.reset(scene)
        side = expert.reset(scene)
        t = 0
        while not env.done:
            obs = env.observation(with_image=images)
            action = expert.act(env.joints)
            for key, value in obs.items():
                frames[key].append(value)
            frames[ACTION].append(action)
            frames["episode_index"].append(episode)
            frames["frame_index"].append(t)
            frames["side"].append(side)
            env.step(action)
            t += 1
    return {k: np.stack(v) if k in (STATE, ENV, ACTION, IMAGE) else np.asarray(v) for k, v in frames.items()}


STD_FLOOR = {STATE: 1.0, ACTION: 1.0, ENV: 0.01, IMAGE: 0.01}


def statistics(data: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """LeRobot-style per-feature mean/std/min/max; image stats per channel (3, 1, 1) on [0, 1] pixels.

    Joints the expert never moves have std 0; LeRobot would then divide by eps and turn a servo's
    one-tick jitter into a huge input. The std is floored (STD_FLOOR, in the feature's units) instead.
    """
    stats = {}
    for key in (STATE, ENV, ACTION):
        x = data[key].astype(np.float64)
        stats[key] = {"mean": x.mean(0), "std": np.maximum(x.std(0), STD_FLOOR[key]), "min": x.min(0),
                      "max": np.maximum(x.max(0), x.min(0) + STD_FLOOR[key])}
    if IMAGE in data:
        x = data[IMAGE].astype(np.float64) / 255.0
        per_channel = x.transpose(3, 0, 1, 2).reshape(3, -1)
        stats[IMAGE] = {name: fn(per_channel, axis=1).reshape(3, 1, 1)
                        for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))}
        stats[IMAGE]["std"] = np.maximum(stats[IMAGE]["std"], STD_FLOOR[IMAGE])
    return {k: {s: v.astype(np.float32) for s, v in d.items()} for k, d in stats.items()}


def windows(data: dict[str, np.ndarray], frames: np.ndarray, obs_offsets: range, action_offsets: range
            ) -> dict[str, np.ndarray]:
    """LeRobot's delta_timestamps: for each frame, observations at `obs_offsets` and actions at
    `action_offsets` relative to it, indices clamped to the episode, with `action_is_pad` marking
    actions past the episode's end (and `observation_is_pad` before its start)."""
    episode = data["episode_index"]
    starts = np.searchsorted(episode, episode, side="left")
    ends = np.searchsorted(episode, episode, side="right") - 1
    out = {}
    for name, offsets, keys in (("observation", obs_offsets, [k for k in (STATE, ENV, IMAGE) if k in data]),
                                ("action", action_offsets, [ACTION])):
        idx = frames[:, None] + np.asarray(offsets)[None, :]
        lo, hi = starts[frames][:, None], ends[frames][:, None]
        out[f"{name}_is_pad"] = (idx < lo) | (idx > hi)
        idx = np.clip(idx, lo, hi)
        for key in keys:
            out[key] = data[key][idx]
    return out


def save(data: dict[str, np.ndarray], path: str | Path) -> None:
    np.savez_compressed(path, **data)


def load(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
