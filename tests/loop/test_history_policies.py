"""Asynchronous execution of history-based policies: observe() every tick, plan() from a snapshot."""

from __future__ import annotations

import numpy as np

import edge


def test_diffusion_plan_uses_the_observed_window(export_fixture, reference_rollout):
    ref = reference_rollout("diffusion_cam")
    pkg = export_fixture("diffusion_cam")
    a, b = edge.load_policy(pkg, seed=3), edge.load_policy(pkg, seed=3)
    obs = [{n: ref[f"obs.{t}.{n}"] for n in a.input_names} for t in range(3)]
    contexts = [a.observe(o) for o in obs]
    plan = a.plan(contexts[2])
    b.observe(obs[0])
    b.observe(obs[1])
    expected = b.predict_action_chunk(obs[2])  # window (o1, o2), the same first noise draw
    start = a.chunking.n_obs_steps - 1
    np.testing.assert_allclose(plan, expected[start:], atol=1e-5)
    # The snapshot is immune to later observations (the control thread keeps writing history).
    before = [frame["observation.state"].copy() for frame in contexts[1]]
    a.observe(obs[0])
    assert all(np.array_equal(x, frame["observation.state"]) for x, frame in zip(before, contexts[1]))
