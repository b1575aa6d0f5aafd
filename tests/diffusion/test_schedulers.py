"""numpy DDPM / DDIM / DPM-Solver++ / UniPC samplers against diffusers' own schedulers, step by step from identical inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edge.runtime.schedulers import SchedulerConfig, make_scheduler

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
    for i, t in enumerate(ref.timesteps):
        model_output = rng.standard_normal((1, 16, 6)).astype(np.float32)
        x = sample.numpy().copy()
        if sampler == "ddpm":
            sample = ref.step(torch.from_numpy(model_output), t, sample, generator=gen_ref).prev_sample
            noise = torch.randn((1, 16, 6), generator=gen_ours).numpy() if t > 0 else None
        else:
            sample = ref.step(torch.from_numpy(model_output), t, sample).prev_sample
            noise = None
        got = ours.step(model_output, i, x, noise=noise)
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
    np.testing.assert_allclose(ours.step(mo, 9, x), expected, rtol=0, atol=1e-6)


def test_bad_options_are_named():
    config = SchedulerConfig(100, 1e-4, 0.02, "squaredcos_cap_v2", "epsilon", True, 1.0)
    with pytest.raises(ValueError, match="unknown sampler 'euler'"):
        make_scheduler("euler", config, 10)
    with pytest.raises(ValueError, match="outside 1..100"):
        make_scheduler("ddim", config, 101)
    with pytest.raises(ValueError, match="outside 1..100"):
        make_scheduler("ddpm", config, 0)
    with pytest.raises(ValueError, match="repeats timesteps"):
        make_scheduler("unipc", config, 100)
    with pytest.raises(ValueError, match="adds no noise"):
        make_scheduler("dpmsolver++", config, 10).step(np.zeros(3, np.float32), 0, np.zeros(3, np.float32),
                                                      noise=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="beta_schedule 'sigmoid'"):
        SchedulerConfig(100, 1e-4, 0.02, "sigmoid", "epsilon", True, 1.0)
    with pytest.raises(ValueError, match="prediction_type 'v_prediction'"):
        SchedulerConfig(100, 1e-4, 0.02, "linear", "v_prediction", True, 1.0)


MULTISTEP = {"dpmsolver++": lambda **kw: diffusers.DPMSolverMultistepScheduler(
                 algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", lower_order_final=True, **kw),
             "unipc": lambda **kw: diffusers.UniPCMultistepScheduler(
                 solver_order=2, solver_type="bh2", predict_x0=True, lower_order_final=True, **kw)}


def _multistep_pair(sampler: str, k: int, **overrides):
    """diffusers' solver on a LeRobot DDPM-100 checkpoint's schedule and timestep spacing, and ours from that config.

    LeRobot's clip_sample (range 1) is the solver's thresholding with sample_max_value 1 (clamp x0 to [-1, 1])."""
    config = dict(num_train_timesteps=100, beta_start=1e-4, beta_end=0.02, beta_schedule="squaredcos_cap_v2",
                  prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0)
    config.update(overrides)
    ddpm = diffusers.DDPMScheduler(**config)
    ref = MULTISTEP[sampler](**{k: v for k, v in ddpm.config.items() if k in ("num_train_timesteps", "beta_start",
                                "beta_end", "beta_schedule", "prediction_type", "timestep_spacing", "steps_offset")},
                             thresholding=config["clip_sample"], sample_max_value=config["clip_sample_range"])
    ref.set_timesteps(k)
    return ref, make_scheduler(sampler, SchedulerConfig(**config), k)


def _assert_sigmas_match(ours, ref) -> None:
    """Within one float32 ulp: torch's vectorised sqrt is not always correctly rounded, numpy's is."""
    np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=1.2e-7, atol=0)


@pytest.mark.parametrize("sampler", sorted(MULTISTEP))
@pytest.mark.parametrize("beta_schedule,prediction_type,clip", [
    ("squaredcos_cap_v2", "epsilon", True), ("squaredcos_cap_v2", "epsilon", False),
    ("squaredcos_cap_v2", "sample", True), ("linear", "epsilon", True), ("scaled_linear", "sample", False)])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 10, 32, 99])
def test_multistep_step_matches_diffusers(sampler, beta_schedule, prediction_type, clip, k):
    ref, ours = _multistep_pair(sampler, k, beta_schedule=beta_schedule, prediction_type=prediction_type,
                                clip_sample=clip)
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    _assert_sigmas_match(ours, ref)
    # UniPC's B(h) coefficients cancel as the step h shrinks (h_phi_k / h - 1/k!), so a one-ulp difference in sigma
    # (torch's vectorised sqrt is not correctly rounded) grows with K: observed 5e-7 at K=10, 6e-6 at 32, 5e-5 at 99.
    tolerance = 2e-6 if sampler == "dpmsolver++" or k <= 10 else 1e-6 * k
    rng = np.random.default_rng(k)
    sample = torch.from_numpy(rng.standard_normal((1, 16, 6)).astype(np.float32))
    for i, t in enumerate(ref.timesteps):
        # a model output near the trajectory (as a trained model's is) keeps x0 mostly inside the clip range
        model_output = (rng.standard_normal((1, 16, 6)) * (0.3 if prediction_type == "sample" else 1)).astype(np.float32)
        x = sample.numpy().copy()
        sample = ref.step(torch.from_numpy(model_output), t, sample).prev_sample
        got = ours.step(model_output, i, x)
        assert got.dtype == np.float32
        expected = sample.numpy()
        err = np.max(np.abs(got - expected) / np.maximum(1.0, np.abs(expected)))
        assert err <= tolerance, f"{sampler} K={k} step {i} (t={int(t)}): {err:.3g}"


@pytest.mark.parametrize("sampler", sorted(MULTISTEP))
@pytest.mark.parametrize("spacing", ["leading", "linspace", "trailing"])
def test_multistep_timestep_spacing(sampler, spacing):
    for k in (1, 3, 10, 32, 99):
        ref, ours = _multistep_pair(sampler, k, timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0)
        assert ref.config.timestep_spacing == spacing
        np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
        _assert_sigmas_match(ours, ref)


@pytest.mark.parametrize("sampler", sorted(MULTISTEP))
def test_multistep_chunks_restart_at_step_zero(sampler):
    """A second chunk sampled with the same scheduler object equals the first: no state leaks between chunks."""
    _, ours = _multistep_pair(sampler, 4)
    rng = np.random.default_rng(5)
    outputs = [rng.standard_normal((1, 16, 6)).astype(np.float32) for _ in range(4)]
    noise = rng.standard_normal((1, 16, 6)).astype(np.float32)

    def chunk():
        x = noise
        for i, mo in enumerate(outputs):
            x = ours.step(mo, i, x)
        return x

    np.testing.assert_array_equal(chunk(), chunk())
