"""Real-time chunking for Diffusion: the guided sampler against plain per-step sampling and the committed actions."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.runtime.guidance import ChunkGuide, RTCOptions, chunk_guide, rtc_weights
from edge.runtime.schedulers import SAMPLERS
from edge.sim import ReachEnv, sample_scene

DEMO = Path(edge.__file__).parent / "data" / "demo_diffusion"


def context_of(policy):  # noqa: ANN001, ANN201
    env = ReachEnv()
    env.reset(sample_scene(np.random.default_rng(11)))
    policy.reset()
    return policy.observe(env.observation())


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_rtc_with_all_weights_zero_is_per_step_sampling_bit_for_bit(sampler):
    guided = edge.load_policy(DEMO, sampler=sampler, seed=9, fused=False)
    plain = edge.load_policy(DEMO, sampler=sampler, seed=9, fused=False)
    cond = guided.encode(deque(context_of(guided)))
    horizon, dim = guided.chunk_shape[1:]
    target = np.random.default_rng(0).uniform(-1, 1, (horizon, dim)).astype(np.float32)
    zero = ChunkGuide(target, np.zeros(horizon, np.float32), consistent_noise=True)
    for _ in range(2):  # the generator advances identically too (DDPM draws variance noise at every step)
        np.testing.assert_array_equal(guided.denoise(cond, guide=zero), plain.denoise(cond))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("consistent_noise", [True, False])
def test_the_frozen_prefix_equals_the_committed_actions(sampler, consistent_noise):
    policy = edge.load_policy(DEMO, sampler=sampler, seed=2, rtc=RTCOptions(0.8, consistent_noise))
    context = context_of(policy)
    committed = policy.plan(context, np.zeros((0, policy.action_dim), np.float32), 0)[3:10]  # a plausible future
    free = policy.plan(context, np.zeros((0, policy.action_dim), np.float32), 0)
    for d in (1, 4, 7):
        chunk = policy.plan(context, committed, d)
        np.testing.assert_allclose(chunk[:d], committed[:d], atol=1e-3)  # policy units, the arm's ±100 range
        assert np.abs(free[:d] - committed[:d]).max() > 0.5  # unguided, the rows differ: the guide did it
        assert chunk.shape == free.shape


def test_the_mask_is_one_on_the_frozen_rows_then_decays_to_zero_past_the_overlap():
    w = rtc_weights(rows=10, committed=6, delay=2, decay=0.5)
    np.testing.assert_allclose(w, [1, 1, 0.5, 0.25, 0.125, 0.0625, 0, 0, 0, 0])
    guide = chunk_guide(RTCOptions(0.5), np.ones((6, 2), np.float32), 2, offset=1, horizon=11)
    assert guide.weights[0, 0, 0] == 0 and guide.weights[0, 1, 0] == 1  # row offset = the observation tick


def test_a_fused_graph_falls_back_to_per_step_calls_when_guided(fused_package):
    fused = edge.load_policy(fused_package, sampler="ddim", num_inference_steps=4, seed=1, rtc=True)
    per_step = edge.load_policy(fused_package, sampler="ddim", num_inference_steps=4, seed=1, fused=False)
    assert fused.fused_graph is not None and "denoiser" in fused.graphs
    obs = {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32)
           for i in fused.package.manifest.inputs}
    cond = fused.encode(deque([fused.observation_processor(obs)] * fused.chunking.n_obs_steps))
    horizon, dim = fused.chunk_shape[1:]
    zero = ChunkGuide(np.zeros((horizon, dim), np.float32), np.zeros(horizon, np.float32), True)
    np.testing.assert_array_equal(fused.denoise(cond, guide=zero), per_step.denoise(cond))
