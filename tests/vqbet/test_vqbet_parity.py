"""Greedy VQ-BeT against LeRobot 0.4.4's own rollout of the vqbet_cam fixture."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

import edge
from edge.runtime.normalize import Normalizer
from export.checkpoint import load_checkpoint
from export.families.vqbet import build_policy

TOLERANCE = 1e-4


def steps(ref: dict[str, np.ndarray]) -> list[int]:
    return sorted(int(k.split(".")[1]) for k in ref if k.startswith("action."))


def observation(ref: dict[str, np.ndarray], t: int) -> dict[str, np.ndarray]:
    return {k.split(".", 2)[2]: v for k, v in ref.items() if k.startswith(f"obs.{t}.")}


def test_runtime_greedy_rollout_matches_lerobot(vqbet_package, reference_rollout):
    ref = reference_rollout("vqbet_cam")
    policy = edge.load_policy(vqbet_package, greedy=True)
    for _episode in range(2):  # reset must bring back LeRobot's fresh-policy behaviour
        policy.reset()
        errors = [np.abs(policy.select_action(observation(ref, t)) - ref[f"action.{t}"]).max() for t in steps(ref)]
        assert len(errors) == 14 and max(errors) <= TOLERANCE, errors


def test_predict_action_chunk_is_the_queued_chunk(vqbet_package, reference_rollout):
    ref = reference_rollout("vqbet_cam")
    policy = edge.load_policy(vqbet_package, greedy=True)
    chunk = policy.predict_action_chunk(observation(ref, 0))
    assert chunk.shape == (5, 6) and chunk.dtype == np.float32
    np.testing.assert_allclose(chunk, np.stack([ref[f"action.{t}"] for t in range(5)]), atol=TOLERANCE, rtol=0)


def test_pytorch_model_matches_lerobot(lerobot_fixtures, reference_rollout):
    """export/models/vqbet.py itself (no ONNX) reproduces LeRobot's greedy chunks."""
    ref = reference_rollout("vqbet_cam")
    ckpt = load_checkpoint(lerobot_fixtures / "vqbet_cam" / "pretrained_model")
    config, policy = build_policy(ckpt)
    norm_state = Normalizer(ckpt.normalization["observation.state"], (6,))
    unnorm = Normalizer(ckpt.normalization["action"], (6,)).inverse
    n, chunk_size, total = config.n_obs_steps, config.action_chunk_size, len(steps(ref))
    states = [norm_state(observation(ref, t)["observation.state"]) for t in range(total)]
    images = [observation(ref, t)["observation.images.top"].transpose(2, 0, 1).astype(np.float32) / np.float32(255)
              for t in range(total)]
    for t in range(0, total, chunk_size):  # chunks are made when the queue is empty: steps 0, 5, 10
        window = [max(0, s) for s in range(t - n + 1, t + 1)]  # the first observation fills the history
        with torch.no_grad():
            chunk = policy.predict_action_chunk(torch.from_numpy(np.stack([states[s] for s in window]))[None],
                                                torch.from_numpy(np.stack([images[s] for s in window]))[None],
                                                greedy=True)[0].numpy()
        expected = np.stack([ref[f"action.{s}"] for s in range(t, min(t + chunk_size, total))])
        np.testing.assert_allclose(unnorm(chunk)[: len(expected)], expected, atol=TOLERANCE, rtol=0)


def test_runtime_does_not_import_torch():
    code = "import sys, edge, edge.runtime.policies.vqbet; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
