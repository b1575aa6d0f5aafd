"""Temporal ensembling against the ACT paper's weighting, written offline here (not LeRobot's online form)."""

from __future__ import annotations

import numpy as np
import pytest

import edge


def paper_ensemble(chunks: list[np.ndarray], t: int, coeff: float) -> np.ndarray:
    """Action at step t: all chunks predicted at steps j <= t that cover t, weighted exp(-coeff * i),
    i = 0 for the oldest prediction, normalised to sum to one (ACT paper, Algorithm 2)."""
    chunk_size = chunks[0].shape[0]
    preds = [chunks[j][t - j] for j in range(t + 1) if t - j < chunk_size]  # oldest first
    w = np.exp(-coeff * np.arange(len(preds)))
    return (w[:, None] * np.stack(preds)).sum(0) / w.sum()


@pytest.mark.parametrize("coeff", [0.01, 0.5, -0.2])
def test_ensembled_actions_match_paper(coeff, export_fixture, reference_rollout):
    ref = reference_rollout("act_env")
    policy = edge.load_policy(export_fixture("act_env"), temporal_ensemble_coeff=coeff)
    names = policy.input_names
    rng = np.random.default_rng(0)
    # More steps than chunk_size (20) so that the ensemble window saturates.
    observations = [{n: ref[f"obs.{t % 14}.{n}"] + rng.normal(0, 0.1, ref[f"obs.0.{n}"].shape).astype(np.float32)
                     for n in names} for t in range(26)]
    chunks = [policy.predict_action_chunk(o).astype(np.float64) for o in observations]
    policy.reset()
    for t, obs in enumerate(observations):
        action = policy.select_action(obs)
        expected = paper_ensemble(chunks, t, coeff)
        np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-4, err_msg=f"step {t}")


def test_ensembling_differs_from_plain_queue(export_fixture, reference_rollout):
    """Guard: the ensembled action at step 1 is not simply the second action of the first chunk."""
    ref = reference_rollout("act_env")
    plain = edge.load_policy(export_fixture("act_env"))
    ens = edge.load_policy(export_fixture("act_env"), temporal_ensemble_coeff=0.01)
    obs = [{n: ref[f"obs.{t}.{n}"] for n in plain.input_names} for t in range(2)]
    a_plain = [plain.select_action(o) for o in obs]
    a_ens = [ens.select_action(o) for o in obs]
    np.testing.assert_allclose(a_plain[0], a_ens[0], atol=1e-6)
    assert np.abs(a_plain[1] - a_ens[1]).max() > 1e-3
