"""Stochastic code choice: seeded draws whose frequencies follow softmax(logits / temperature)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import edge
from edge.runtime.policies.vqbet import sample_codes

DRAWS = 20000


def softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    p = np.exp(z - z.max())
    return p / p.sum()


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution, closed form for integer dof (scipy is not a dependency)."""
    h = x / 2
    if h == 0:
        return 1.0
    if dof % 2 == 0:
        return sum(math.exp(-h + i * math.log(h) - math.lgamma(i + 1)) for i in range(dof // 2))
    return math.erfc(math.sqrt(h)) + sum(math.exp(-h + (i - 0.5) * math.log(h) - math.lgamma(i + 0.5))
                                         for i in range(1, dof // 2 + 1))


def chi2_pvalue(codes: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square test of code counts against `probs`, bins expecting < 5 draws pooled."""
    counts = np.bincount(codes, minlength=len(probs)).astype(np.float64)
    expected = probs * len(codes)
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return chi2_sf(float(np.sum((counts - expected) ** 2 / expected)), len(counts) - 1)


def fixture_logits(policy, reference_rollout) -> np.ndarray:
    """(rvq_layers, codebook_size) logits of the policy graph on the fixture's first observation window."""
    ref = reference_rollout("vqbet_cam")
    obs = {k.split(".", 2)[2]: v for k, v in ref.items() if k.startswith("obs.0.")}
    policy.reset()
    return policy.graphs["policy"].run(policy.observe(obs))["logits"][0]


def test_chi2_sf_known_values():
    for x, dof in [(3.841459, 1), (5.991465, 2), (11.0705, 5), (24.99579, 15)]:  # 95th percentiles
        assert abs(chi2_sf(x, dof) - 0.05) < 1e-5


@pytest.mark.parametrize("temperature", [0.3, 1.0, 3.0])
def test_sample_codes_follow_softmax(temperature):
    logits = np.linspace(-1.0, 1.5, 8) ** 2
    codes = sample_codes(np.broadcast_to(logits, (DRAWS, 8)), temperature, np.random.default_rng(7))
    assert chi2_pvalue(codes, softmax(logits, temperature)) > 1e-3
    assert chi2_pvalue(codes, softmax(logits, temperature * 2)) < 1e-6  # the temperature really matters


@pytest.mark.parametrize("temperature", [None, 0.05, 0.3])
def test_runner_draws_follow_softmax_with_temperature(vqbet_package, reference_rollout, temperature):
    policy = edge.load_policy(vqbet_package, seed=11, temperature=temperature)
    used = 0.1 if temperature is None else temperature  # None: the checkpoint's bet_softmax_temperature
    assert policy.temperature == used
    logits = fixture_logits(policy, reference_rollout)
    codes = policy.choose_codes(np.broadcast_to(logits, (DRAWS, *logits.shape)))
    for layer in range(logits.shape[0]):
        assert chi2_pvalue(codes[:, layer], softmax(logits[layer], used)) > 1e-3
        assert chi2_pvalue(codes[:, layer], softmax(logits[layer], used * 2)) < 1e-6


def test_seed_makes_rollouts_reproducible(vqbet_package, reference_rollout):
    ref = reference_rollout("vqbet_cam")
    observations = [{k.split(".", 2)[2]: v for k, v in ref.items() if k.startswith(f"obs.{t}.")} for t in range(10)]

    def rollout(seed: int) -> tuple[np.ndarray, list]:
        policy = edge.load_policy(vqbet_package, seed=seed, temperature=1.0)
        actions, codes = [], []
        for obs in observations:
            actions.append(policy.select_action(obs))
            codes.append(tuple(policy.last_codes))
        return np.stack(actions), codes

    (a1, c1), (a2, c2) = rollout(5), rollout(5)
    np.testing.assert_array_equal(a1, a2)
    assert c1 == c2
    draws = {tuple(rollout(seed)[1][-1]) for seed in range(6)}
    assert len(draws) > 1  # 256 roughly equiprobable code pairs at temperature 1: seeds differ


def test_greedy_ignores_the_generator(vqbet_package, reference_rollout):
    policy = edge.load_policy(vqbet_package, greedy=True, seed=1)
    logits = fixture_logits(policy, reference_rollout)
    np.testing.assert_array_equal(policy.choose_codes(np.broadcast_to(logits, (50, *logits.shape))),
                                  np.broadcast_to(logits.argmax(-1), (50, logits.shape[0])))
