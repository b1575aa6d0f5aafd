"""numpy DDPM / DDIM samplers against diffusers' own schedulers, one step at a time from identical inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.schedulers import SchedulerConfig, make_scheduler

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

COMBOS = list(itertools.product(("ddim", "ddpm"), ("linear", "scaled_linear", "squaredcos_cap_v2"),
                                ("epsilon", "sample"), (True, False)))


def _pair(sampler: str, k: int, **overrides):
    kwargs = dict(num_train_timesteps=100, beta_start=1e-4, beta_end=0.02, beta_schedule="squaredcos_cap_v2",
                  prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0)
    kwargs.update(overrides)
    cls = diffusers.DDIMScheduler if sampler == "ddim" else diffusers.DDPMScheduler
    ref = cls(**kwargs)
    ref.set_timesteps(k)
    return ref, make_scheduler(sampler, SchedulerConfig(**kwargs), k)


@pytest.mark.parametrize("sampler,beta_schedule,prediction_type,clip", COMBOS)
@pytest.mark.parametrize("k", [10, 100, 7])
def test_step_matches_diffusers(sampler, beta_schedule, prediction_type, clip, k):
    ref, ours = _pair(sampler, k, beta_schedule=beta_schedule, prediction_type=prediction_type, clip_sample=clip,
                      clip_sample_range=0.8)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_array_equal(ours.alphas_cumprod, ref.alphas_cumprod.numpy())
    rng = np.random.default_rng(0)
    sample = torch.from_numpy(rng.standard_normal((1, 16, 6)).astype(np.float32))
    gen_ref, gen_ours = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in ref.timesteps:
        model_output = rng.standard_normal((1, 16, 6)).astype(np.float32)
        x = sample.numpy().copy()
        if sampler == "ddpm":
            sample = ref.step(torch.from_numpy(model_output), t, sample, generator=gen_ref).prev_sample
            noise = torch.randn((1, 16, 6), generator=gen_ours).numpy() if t > 0 else None
        else:
            sample = ref.step(torch.from_numpy(model_output), t, sample).prev_sample
            noise = None
        got = ours.step(model_output, int(t), x, noise=noise)
        assert got.dtype == np.float32
        expected = sample.numpy()
        # 1e-6 relative to the sample's scale: unclipped epsilon steps reach |x| >> 1 at high noise levels.
        err = np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected)))
        assert err <= 1e-6, f"t={int(t)}: {err:.3g}"


@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_timestep_spacing_and_offset(spacing, sampler):
    for k in (1, 3, 10, 32, 100):
        ref, ours = _pair(sampler, k, timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())


def test_ddim_final_alpha_without_set_alpha_to_one():
    ref, ours = _pair("ddim", 10, set_alpha_to_one=False, clip_sample=False)
    rng = np.random.default_rng(3)
    x, mo = (rng.standard_normal((1, 16, 6)).astype(np.float32) for _ in range(2))
    expected = ref.step(torch.from_numpy(mo), 0, torch.from_numpy(x)).prev_sample.numpy()
    np.testing.assert_allclose(ours.step(mo, 0, x), expected, rtol=0, atol=1e-6)


def test_bad_options_are_named():
    config = SchedulerConfig(100, 1e-4, 0.02, "squaredcos_cap_v2", "epsilon", True, 1.0)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_scheduler("euler", config, 10)
    with pytest.raises(ValueError, match="outside 1..100"):
        make_scheduler("ddim", config, 101)
    with pytest.raises(ValueError, match="outside 1..100"):
        make_scheduler("ddpm", config, 0)
    with pytest.raises(ValueError, match="beta_schedule 'sigmoid'"):
        SchedulerConfig(100, 1e-4, 0.02, "sigmoid", "epsilon", True, 1.0)
    with pytest.raises(ValueError, match="prediction_type 'v_prediction'"):
        SchedulerConfig(100, 1e-4, 0.02, "linear", "v_prediction", True, 1.0)
