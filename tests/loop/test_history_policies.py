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


def test_vqbet_plan_matches_predict_action_chunk(export_fixture, reference_rollout):
    ref = reference_rollout("vqbet_cam")
    pkg = export_fixture("vqbet_cam")
    a, b = edge.load_policy(pkg, greedy=True), edge.load_policy(pkg, greedy=True)
    obs = [{n: ref[f"obs.{t}.{n}"] for n in a.input_names} for t in range(3)]
    contexts = [a.observe(o) for o in obs]
    for o in obs[:2]:
        b.observe(o)
    np.testing.assert_allclose(a.plan(contexts[2]), b.predict_action_chunk(obs[2]), atol=1e-6)
    first = a.plan(contexts[0])  # LeRobot executed the chunk planned at step 0 for its first steps
    n = a.chunking.n_action_steps
    np.testing.assert_allclose(first[:n], np.stack([ref[f"action.{t}"] for t in range(n)]), atol=1e-4)
