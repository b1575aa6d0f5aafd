"""diffusion_cam: the exported package reproduces LeRobot 0.4.4's own rollout, fed the fixture's noise."""

from __future__ import annotations

import numpy as np

import edge
from edge.runtime.package import load_package

CASE = "diffusion_cam"
STEPS = 14


def _rollout(policy, ref) -> float:
    policy.reset()
    worst = 0.0
    for t in range(STEPS):
        obs = {n: ref[f"obs.{t}.{n}"] for n in policy.input_names}
        action = policy.select_action(obs, noise=ref[f"noise.{t}"])
        assert action.shape == (6,) and action.dtype == np.float32
        worst = max(worst, float(np.max(np.abs(action - ref[f"action.{t}"]))))
    return worst


def test_rollout_matches_lerobot(export_fixture, reference_rollout):
    policy = edge.load_policy(export_fixture(CASE))
    assert policy.fused_graph is None and policy.scheduler.name == "ddim"
    assert policy.scheduler.num_inference_steps == 10
    assert _rollout(policy, reference_rollout(CASE)) <= 1e-4


def test_package_layout(export_fixture):
    m = load_package(export_fixture(CASE)).manifest
    assert set(m.graphs) == {"obs_encoder", "denoiser"}
    enc, den = m.graphs["obs_encoder"], m.graphs["denoiser"]
    assert {t.name: t.shape for t in enc.inputs} == {"observation.state": [1, 2, 6],
                                                      "observation.images.top": [1, 2, 3, 96, 96]}
    assert {t.name: (t.shape, t.dtype) for t in den.inputs} == {
        "sample": ([1, 16, 6], "float32"), "timestep": ([1], "float32"),
        "global_cond": ([1, enc.outputs[0].shape[1]], "float32")}
    assert (m.chunking.chunk_size, m.chunking.n_action_steps, m.chunking.n_obs_steps) == (16, 8, 2)
    assert m.policy.sampler == "ddim" and m.policy.num_inference_steps == 10
    assert m.policy.scheduler.beta_schedule == "squaredcos_cap_v2"
    assert m.policy.fused_graphs == {}
    assert max(m.validation.export_max_abs_error.values()) <= 1e-4


def test_checkpoint_steps_run_per_step_in_a_package_with_another_fused_k(fused_package, reference_rollout):
    """A package fused for K=4 still runs the checkpoint's DDIM-10 per step, and still matches LeRobot."""
    policy = edge.load_policy(fused_package)
    assert policy.fused_graph is None
    assert _rollout(policy, reference_rollout(CASE)) <= 1e-4
