"""Runner semantics checked independently of LeRobot: history, queue, chunk slicing, fused vs per-step, options."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import edge
from export.errors import ExportError
from tests.diffusion.conftest import FUSED_K


class Recorder:
    """Wraps a GraphSession and records every feed it is run with."""

    def __init__(self, session):
        self.session, self.calls = session, []

    def run(self, feeds):
        self.calls.append({k: v.copy() for k, v in feeds.items()})
        return self.session.run(feeds)


def _obs(t: int) -> dict[str, np.ndarray]:
    """An observation whose every value encodes the time step t."""
    return {"observation.state": np.full(6, t, np.float32),
            "observation.images.top": np.full((96, 96, 3), 10 * t, np.uint8)}


def test_history_queue_and_chunk_slicing(export_fixture):
    policy = edge.load_policy(export_fixture("diffusion_cam"), seed=0)
    encoder = policy.graphs["obs_encoder"] = Recorder(policy.graphs["obs_encoder"])
    denoiser = policy.graphs["denoiser"] = Recorder(policy.graphs["denoiser"])
    policy.reset()
    rng = np.random.default_rng(1)
    noises = rng.standard_normal((20, 16, 6)).astype(np.float32)
    actions = np.stack([policy.select_action(_obs(t), noise=noises[t]) for t in range(20)])

    # A chunk is sampled at steps 0, 8, 16 (n_action_steps 8): 3 encoder calls, 10 DDIM steps each.
    assert len(encoder.calls) == 3 and len(denoiser.calls) == 30
    state_of = lambda t: policy.observation_processor(_obs(t))["observation.state"]  # noqa: E731
    for call, frames in zip(encoder.calls, [(0, 0), (7, 8), (15, 16)]):
        np.testing.assert_array_equal(call["observation.state"][0], np.stack([state_of(t) for t in frames]))
        image_means = call["observation.images.top"][0].mean(axis=(1, 2, 3))
        expected = [policy.observation_processor(_obs(t))["observation.images.top"].mean() for t in frames]
        np.testing.assert_allclose(image_means, expected, rtol=1e-6)
    # Per-step timesteps are the DDIM-10 "leading" ones, as float32.
    assert [float(c["timestep"][0]) for c in denoiser.calls[:10]] == [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]
    assert denoiser.calls[0]["timestep"].dtype == np.float32
    np.testing.assert_array_equal(denoiser.calls[10]["sample"][0], noises[8])  # noise of the sampling step

    # Executed actions are chunk[n_obs_steps-1 : n_obs_steps-1+n_action_steps] of each chunk.
    for start, frames in ((0, (0, 0)), (8, (7, 8)), (16, (15, 16))):
        history = deque([policy.observation_processor(_obs(t)) for t in frames], maxlen=2)
        chunk = policy.unnormalize(policy.denoise(policy.encode(history), noises[start]))
        n = min(8, 20 - start)
        np.testing.assert_allclose(actions[start : start + n], chunk[1 : 1 + n], rtol=0, atol=1e-6)


def test_predict_action_chunk_leaves_state_alone_and_reset_clears(export_fixture):
    policy = edge.load_policy(export_fixture("diffusion_cam"), seed=0)
    noise = np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32)
    chunk = policy.predict_action_chunk(_obs(0), noise=noise)
    assert chunk.shape == (16, 6) and chunk.dtype == np.float32
    assert not policy._history and not policy._queue
    first = policy.select_action(_obs(0), noise=noise)
    np.testing.assert_allclose(first, chunk[1], rtol=0, atol=1e-6)
    policy.select_action(_obs(1))
    policy.reset()
    assert not policy._history and not policy._queue
    np.testing.assert_allclose(policy.select_action(_obs(0), noise=noise), first, rtol=0, atol=0)


def test_seeded_noise_is_reproducible(export_fixture):
    path = export_fixture("diffusion_cam")
    a, b, c = (edge.load_policy(path, seed=s) for s in (5, 5, 6))
    xa, xb, xc = (p.predict_action_chunk(_obs(3)) for p in (a, b, c))
    np.testing.assert_array_equal(xa, xb)
    assert not np.allclose(xa, xc)


def test_ddpm_override_runs_with_generator_noise(export_fixture):
    path = export_fixture("diffusion_cam")
    policy = edge.load_policy(path, sampler="ddpm", num_inference_steps=5, seed=0)
    denoiser = policy.graphs["denoiser"] = Recorder(policy.graphs["denoiser"])
    noise = np.zeros((16, 6), np.float32)
    x1 = policy.predict_action_chunk(_obs(0), noise=noise)
    assert [float(c["timestep"][0]) for c in denoiser.calls] == [80, 60, 40, 20, 0]
    x2 = edge.load_policy(path, sampler="ddpm", num_inference_steps=5, seed=1).predict_action_chunk(_obs(0), noise)
    assert np.all(np.isfinite(x1)) and not np.allclose(x1, x2)  # variance noise comes from the seeded generator


@pytest.mark.parametrize("sampler", ["dpmsolver++", "unipc"])
def test_few_step_samplers_match_diffusers_in_the_loop(export_fixture, sampler):
    """The runner's chunk equals a loop of the same ONNX denoiser with diffusers' own solver doing the steps."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    policy = edge.load_policy(export_fixture("diffusion_cam"), sampler=sampler, num_inference_steps=4)
    denoiser = policy.graphs["denoiser"] = Recorder(policy.graphs["denoiser"])
    noise = np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32)
    chunk = policy.denoise(policy.encode(deque([policy.observation_processor(_obs(1))] * 2, maxlen=2)), noise)
    config = policy.scheduler.config
    cls = diffusers.DPMSolverMultistepScheduler if sampler == "dpmsolver++" else diffusers.UniPCMultistepScheduler
    ref = cls(**{k: getattr(config, k) for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule",
                                                 "prediction_type", "timestep_spacing", "steps_offset")},
              thresholding=config.clip_sample, sample_max_value=config.clip_sample_range)
    ref.set_timesteps(4)
    x = torch.from_numpy(noise[None])
    for call, t in zip(denoiser.calls, ref.timesteps):
        assert float(call["timestep"][0]) == int(t)
        out = denoiser.session.run({**call, "sample": x.numpy()})["model_output"]
        x = ref.step(torch.from_numpy(out), t, x).prev_sample
    assert len(denoiser.calls) == 4
    np.testing.assert_allclose(chunk, x.numpy()[0], rtol=0, atol=1e-5)


def test_fused_graph_agrees_with_per_step(fused_package):
    fused = edge.load_policy(fused_package, num_inference_steps=FUSED_K)
    per_step = edge.load_policy(fused_package, num_inference_steps=FUSED_K, fused=False)
    assert fused.fused_graph == f"denoise_{FUSED_K}" and per_step.fused_graph is None
    assert edge.load_policy(fused_package, sampler="ddpm", num_inference_steps=FUSED_K).fused_graph is None
    rng = np.random.default_rng(4)
    for t in range(3):
        noise = rng.standard_normal((16, 6)).astype(np.float32)
        np.testing.assert_allclose(fused.predict_action_chunk(_obs(t), noise), per_step.predict_action_chunk(_obs(t), noise),
                                   rtol=0, atol=1e-5)


def test_only_the_graphs_a_runner_calls_are_loaded(fused_package):
    """A fused graph and the per-step denoiser hold the same U-Net weights: one of them is loaded, never both."""
    assert sorted(edge.load_policy(fused_package, num_inference_steps=FUSED_K).graphs) == [
        f"denoise_{FUSED_K}", "obs_encoder"]
    assert sorted(edge.load_policy(fused_package, num_inference_steps=FUSED_K, fused=False).graphs) == [
        "denoiser", "obs_encoder"]
    assert sorted(edge.load_policy(fused_package, sampler="unipc").graphs) == ["denoiser", "obs_encoder"]


def test_bad_options_are_clear(export_fixture):
    path = export_fixture("diffusion_cam")
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        edge.load_policy(path, sampler="euler")
    with pytest.raises(ValueError, match="outside 1..100"):
        edge.load_policy(path, num_inference_steps=101)
    with pytest.raises(edge.OptionError, match="temperature"):
        edge.load_policy(path, temperature=1.0)
    policy = edge.load_policy(path)
    with pytest.raises(ValueError, match="noise must have shape"):
        policy.select_action(_obs(0), noise=np.zeros((8, 6), np.float32))


def test_bad_fused_steps_option_is_refused():
    from export.families.base import ExportOptions
    from export.families.diffusion import fused_steps_option

    assert fused_steps_option(ExportOptions(), 100) is None
    for bad in (0, 101, 2.5, "4"):
        with pytest.raises(ExportError, match="fused_steps must be an integer in 1..100"):
            fused_steps_option(ExportOptions(extra={"fused_steps": bad}), 100)
