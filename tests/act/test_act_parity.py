"""ACT exported by us and run torch-free reproduces LeRobot 0.4.4's own rollout action for action."""

from __future__ import annotations

import numpy as np
import pytest

import edge

CASES = ["act_env", "act_cam"]


def rollout_inputs(ref: dict, t: int, names: list[str]) -> dict[str, np.ndarray]:
    return {n: ref[f"obs.{t}.{n}"] for n in names}


@pytest.mark.parametrize("case", CASES)
def test_select_action_matches_lerobot(case, export_fixture, reference_rollout):
    ref = reference_rollout(case)
    steps = sorted({int(k.split(".")[1]) for k in ref if k.startswith("action.")})
    assert len(steps) == 14
    policy = edge.load_policy(export_fixture(case), backend="onnxruntime")
    policy.reset()
    for t in steps:
        action = policy.select_action(rollout_inputs(ref, t, policy.input_names))
        assert action.shape == ref[f"action.{t}"].shape and action.dtype == np.float32
        np.testing.assert_allclose(action, ref[f"action.{t}"], rtol=0, atol=1e-4, err_msg=f"{case} step {t}")


@pytest.mark.parametrize("case", CASES)
def test_reset_restarts_the_queue(case, export_fixture, reference_rollout):
    """After reset() the first action comes from a fresh chunk again, as in LeRobot."""
    ref = reference_rollout(case)
    policy = edge.load_policy(export_fixture(case))
    policy.reset()
    for t in range(3):
        policy.select_action(rollout_inputs(ref, t, policy.input_names))
    policy.reset()
    first = policy.select_action(rollout_inputs(ref, 0, policy.input_names))
    np.testing.assert_allclose(first, ref["action.0"], atol=1e-4)


def test_queue_refills_every_n_action_steps(export_fixture, reference_rollout):
    """Steps 0..9 come from the chunk predicted at step 0; step 10 from a new chunk at step 10."""
    ref = reference_rollout("act_env")
    policy = edge.load_policy(export_fixture("act_env"))
    n = policy.chunking.n_action_steps
    chunk0 = policy.predict_action_chunk(rollout_inputs(ref, 0, policy.input_names))
    chunk_n = policy.predict_action_chunk(rollout_inputs(ref, n, policy.input_names))
    policy.reset()
    actions = np.stack([policy.select_action(rollout_inputs(ref, t, policy.input_names)) for t in range(n + 1)])
    np.testing.assert_allclose(actions[:n], chunk0[:n], atol=1e-6)
    np.testing.assert_allclose(actions[n], chunk_n[0], atol=1e-6)
    assert chunk0.shape == (policy.chunking.chunk_size, policy.action_dim)
