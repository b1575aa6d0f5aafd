"""diffusers' DDPM, DDIM, DPM-Solver++ (2M) and UniPC (bh2) schedulers for a DDPM-trained checkpoint, in numpy.

Formula for formula with diffusers (scheduling_ddpm.py, scheduling_ddim.py, scheduling_dpmsolver_multistep.py,
scheduling_unipc_multistep.py): the beta schedules linear / scaled_linear / squaredcos_cap_v2, "leading" /
"linspace" / "trailing" timestep spacing with steps_offset, epsilon or sample prediction, clip_sample, DDIM with
eta = 0 and set_alpha_to_one, DDPM with "fixed_small" variance. The two multistep solvers are the training-free
higher-order samplers: second order, data prediction (x0), lower order at the final step, final sigma zero, the
checkpoint's timestep spacing; LeRobot's clip_sample clips their x0 prediction as it clips DDIM's (with
clip_sample_range 1 that is diffusers' `thresholding=True, sample_max_value=1`). Per-step constants are float32
scalars computed in diffusers' order and kept as Python floats, so `step`'s array arithmetic is float32 on numpy
1.x and 2.x alike and also runs unchanged on torch tensors (the exporter unrolls DDIM into fused graphs with
these very constants). The schedule's config (SchedulerConfig) and the sampler names (SAMPLERS) belong to the
package format (edge/runtime/package/policy_sections.py); SCHEDULERS below has one class per name.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from edge.errors import OptionError
from edge.runtime.package import SAMPLERS, SchedulerConfig

F32 = np.float32


class Guide(Protocol):
    """Steers a sampler's x_0 prediction at every step (real-time chunking: edge/runtime/guidance.py)."""

    def blend(self, x0: Any) -> Any:
        """The x_0 prediction with the guide's target blended in."""

    def noise(self, eps: Any, x0: Any, sample: Any, sqrt_a: float, sqrt_b: float) -> Any:
        """DDIM/DDPM: the noise prediction to step with, given the blended x_0."""


def _linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """torch.linspace(..., dtype=float32) on CPU: float32 step, fused multiply-add from either end."""
    i = np.arange(steps, dtype=np.float64)
    s, e = np.float64(F32(start)), np.float64(F32(end))
    step = np.float64((F32(end) - F32(start)) / F32(max(steps - 1, 1)))
    return np.where(i < steps // 2, s + step * i, e - step * (steps - 1 - i)).astype(F32)


def betas(config: SchedulerConfig) -> np.ndarray:
    """The (num_train_timesteps,) float32 betas exactly as diffusers builds them."""
    n = config.num_train_timesteps
    if config.beta_schedule == "linear":
        return _linspace_f32(config.beta_start, config.beta_end, n)
    if config.beta_schedule == "scaled_linear":
        root = _linspace_f32(config.beta_start ** 0.5, config.beta_end ** 0.5, n)
        return root * root
    alpha_bar = [math.cos((i / n + 0.008) / 1.008 * math.pi / 2) ** 2 for i in range(n + 1)]
    return np.array([min(1 - alpha_bar[i + 1] / alpha_bar[i], 0.999) for i in range(n)], dtype=F32)


def alphas_cumprod(config: SchedulerConfig) -> np.ndarray:
    """cumprod(1 - betas) in float32, accumulated in float64 as torch.cumprod does on CPU."""
    return np.cumprod((F32(1) - betas(config)).astype(np.float64)).astype(F32)


class Scheduler:
    """One sampler at a fixed number of inference steps: for i, t in enumerate(timesteps), call step(..., i, ...).

    Steps must be taken in order from i = 0 for each chunk (the multistep solvers keep the previous x0)."""

    name = "base"

    def __init__(self, config: SchedulerConfig, num_inference_steps: int):
        n = config.num_train_timesteps
        if not isinstance(num_inference_steps, (int, np.integer)) or isinstance(num_inference_steps, bool):
            raise OptionError(f"num_inference_steps must be an integer, got {num_inference_steps!r}")
        if not 1 <= num_inference_steps <= n:
            raise OptionError(f"num_inference_steps {num_inference_steps} is outside 1..{n} (the checkpoint was "
                             f"trained with num_train_timesteps={n})")
        self.config = config
        self.num_inference_steps = int(num_inference_steps)
        self.alphas_cumprod = alphas_cumprod(config)
        self.timesteps: np.ndarray = self._timesteps()

    def _timesteps(self) -> np.ndarray:
        """DDIM / DDPM set_timesteps: K of the N training steps, from the noisiest."""
        n, k, spacing = self.config.num_train_timesteps, self.num_inference_steps, self.config.timestep_spacing
        if spacing == "leading":
            return (np.arange(0, k) * (n // k)).round()[::-1].astype(np.int64) + self.config.steps_offset
        if spacing == "linspace":
            return np.linspace(0, n - 1, k).round()[::-1].astype(np.int64)
        return np.round(np.arange(n, 0, -n / k)).astype(np.int64) - 1

    def _alpha(self, t: int) -> np.float32:
        return self.alphas_cumprod[t]

    def _clip(self, x0: Any) -> Any:
        """LeRobot's clip_sample on the predicted x_0."""
        if self.config.clip_sample:
            r = float(self.config.clip_sample_range)
            return x0.clip(-r, r)
        return x0

    def _x0_eps(self, model_output: Any, sample: Any, alpha: np.float32, guide: Guide | None = None) -> tuple[Any, Any]:
        """(clipped predicted x_0, predicted noise) from the model output, as diffusers orders it; `guide` blends
        the x_0 prediction (and, if it says so, the noise is recomputed to match the blended x_0)."""
        sqrt_a, sqrt_b = float(np.sqrt(alpha)), float(np.sqrt(F32(1) - alpha))
        if self.config.prediction_type == "epsilon":
            x0, eps = (sample - model_output * sqrt_b) / sqrt_a, model_output
        else:
            x0 = model_output
            eps = (sample - x0 * sqrt_a) / sqrt_b
        x0 = self._clip(x0)
        if guide is not None:
            x0 = guide.blend(x0)
            eps = guide.noise(eps, x0, sample, sqrt_a, sqrt_b)
        return x0, eps

    def step(self, model_output: Any, i: int, sample: Any, noise: np.ndarray | None = None,
             guide: Guide | None = None) -> Any:
        """x at timesteps[i] → x at the next timestep. `noise` (sample's shape) is DDPM's variance noise; `guide`
        blends target rows into the x_0 prediction (real-time chunking, edge/runtime/guidance.py)."""
        raise NotImplementedError


class DDIMScheduler(Scheduler):
    """diffusers.DDIMScheduler.step with eta = 0 (deterministic); the previous timestep is t - N // K."""

    name = "ddim"

    def alphas(self, i: int) -> tuple[np.float32, np.float32]:
        """(ᾱ at timesteps[i], ᾱ at the previous timestep, or 1 past the end with set_alpha_to_one)."""
        t = int(self.timesteps[i])
        prev_t = t - self.config.num_train_timesteps // self.num_inference_steps
        if prev_t >= 0:
            return self._alpha(t), self._alpha(prev_t)
        return self._alpha(t), F32(1) if self.config.set_alpha_to_one else self.alphas_cumprod[0]

    def step(self, model_output: Any, i: int, sample: Any, noise: np.ndarray | None = None,
             guide: Guide | None = None) -> Any:
        if noise is not None:
            raise OptionError("DDIM with eta = 0 adds no noise; pass noise=None")
        alpha, alpha_prev = self.alphas(i)
        x0, eps = self._x0_eps(model_output, sample, alpha, guide)
        return x0 * float(np.sqrt(alpha_prev)) + eps * float(np.sqrt(F32(1) - alpha_prev))


class DDPMScheduler(Scheduler):
    """diffusers.DDPMScheduler.step, "fixed_small" variance; noise is added at every t > 0."""

    name = "ddpm"

    def step(self, model_output: Any, i: int, sample: Any, noise: np.ndarray | None = None,
             guide: Guide | None = None) -> Any:
        t = int(self.timesteps[i])
        prev_t = int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1
        alpha = self._alpha(t)
        alpha_prev = self._alpha(prev_t) if prev_t >= 0 else F32(1)
        beta, beta_prev = F32(1) - alpha, F32(1) - alpha_prev
        current_alpha = alpha / alpha_prev
        current_beta = F32(1) - current_alpha
        x0, _ = self._x0_eps(model_output, sample, alpha, guide)
        x0_coeff = float(np.sqrt(alpha_prev) * current_beta / beta)
        sample_coeff = float(np.sqrt(current_alpha) * beta_prev / beta)
        prev = x0 * x0_coeff + sample * sample_coeff
        if t > 0:
            if noise is None:
                raise OptionError(f"DDPM needs variance noise at t = {t} > 0")
            variance = max(beta_prev / beta * current_beta, F32(1e-20))
            prev = prev + noise * float(np.sqrt(variance))
        return prev


class MultistepScheduler(Scheduler):
    """What DPM-Solver++ and UniPC share (diffusers' multistep set_timesteps, sigmas, x0 conversion).

    sigma_i = sqrt((1 - ᾱ_t) / ᾱ_t) at timesteps[i], with a final sigma of zero; alpha_i = 1 / sqrt(sigma_i² + 1),
    sigma'_i = sigma_i · alpha_i, lambda_i = log alpha_i - log sigma'_i (infinite at the final zero sigma). All
    float32 scalars, in diffusers' order of operations; logs and exponentials correctly rounded from float64.
    The timesteps are spaced as the checkpoint's scheduler config says ("leading" for LeRobot's, as its DDIM
    samples), not by these solvers' own diffusers default ("linspace", which starts at t = N-1 and did worse on
    the bundled policy: benchmarks/RESULTS.md, samplers).
    """

    def __init__(self, config: SchedulerConfig, num_inference_steps: int):
        super().__init__(config, num_inference_steps)
        if np.any(np.diff(self.timesteps) >= 0):  # diffusers would divide by a zero step size (NaN)
            raise OptionError(f"{self.name} with {config.timestep_spacing!r} spacing at num_inference_steps "
                             f"{num_inference_steps} repeats timesteps {self.timesteps.tolist()}; use fewer steps")
        ac = self.alphas_cumprod
        train_sigmas = np.sqrt((F32(1) - ac) / ac)
        self.sigmas = np.concatenate([np.interp(self.timesteps, np.arange(len(ac)), train_sigmas), [0]]).astype(F32)
        self.alpha_t = [F32(1.0) / np.sqrt(s * s + F32(1)) for s in self.sigmas]
        self.sigma_t = [s * a for s, a in zip(self.sigmas, self.alpha_t)]
        self.lambdas = [F32(math.log(a)) - (F32(math.log(s)) if s > 0 else F32(-np.inf))
                        for a, s in zip(self.alpha_t, self.sigma_t)]
        self._x0: list[Any] = [None, None]  # x0 predictions of the previous and the current step

    def _timesteps(self) -> np.ndarray:
        """DPMSolverMultistep / UniPCMultistep set_timesteps (lambda_min_clipped = -inf)."""
        n, k, spacing = self.config.num_train_timesteps, self.num_inference_steps, self.config.timestep_spacing
        if spacing == "linspace":
            return np.linspace(0, n - 1, k + 1).round()[::-1][:-1].astype(np.int64)
        if spacing == "leading":
            return (np.arange(0, k + 1) * (n // (k + 1))).round()[::-1][:-1].astype(np.int64) + self.config.steps_offset
        return np.arange(n, 0, -n / k).round().astype(np.int64) - 1

    def _convert(self, model_output: Any, i: int, sample: Any, guide: Guide | None = None) -> Any:
        """convert_model_output with x0 (data) prediction, clipped like LeRobot's clip_sample; `guide` blends it
        (these solvers step on x0 alone, so there is no noise to make consistent)."""
        if self.config.prediction_type == "epsilon":
            x0 = (sample - model_output * float(self.sigma_t[i])) / float(self.alpha_t[i])
        else:
            x0 = model_output
        x0 = self._clip(x0)
        return x0 if guide is None else guide.blend(x0)

    def _remember(self, x0: Any) -> None:
        self._x0 = [self._x0[1], x0]


class DPMSolverMultistepScheduler(MultistepScheduler):
    """diffusers.DPMSolverMultistepScheduler: algorithm "dpmsolver++", solver_order 2, midpoint, final sigma 0."""

    name = "dpmsolver++"

    def step(self, model_output: Any, i: int, sample: Any, noise: np.ndarray | None = None,
             guide: Guide | None = None) -> Any:
        if noise is not None:
            raise OptionError("DPM-Solver++ (ODE) adds no noise; pass noise=None")
        x0 = self._convert(model_output, i, sample, guide)
        self._remember(x0)
        a_t, s_t, s_s0 = self.alpha_t[i + 1], self.sigma_t[i + 1], self.sigma_t[i]
        h = self.lambdas[i + 1] - self.lambdas[i]
        phi = a_t * (F32(math.exp(-float(h))) - F32(1))
        if i == 0 or i == self.num_inference_steps - 1:  # warm-up and lower_order_final: first order (DDIM)
            return sample * float(s_t / s_s0) - x0 * float(phi)
        r0 = (self.lambdas[i] - self.lambdas[i - 1]) / h
        d1 = (x0 - self._x0[0]) * float(F32(1) / r0)
        return sample * float(s_t / s_s0) - x0 * float(phi) - d1 * float(F32(0.5) * phi)


class UniPCMultistepScheduler(MultistepScheduler):
    """diffusers.UniPCMultistepScheduler: solver_order 2, bh2, predict_x0, corrector on every step, final sigma 0."""

    name = "unipc"

    def __init__(self, config: SchedulerConfig, num_inference_steps: int):
        super().__init__(config, num_inference_steps)
        self._last_sample: Any = None
        self._last_order = 1

    def _coefficients(self, t: int, s0: int) -> tuple[float, float, float, list[float]]:
        """sigma_t / sigma_s0, alpha_t·h_phi_1, alpha_t·B(h), and b (UniC's right-hand side) from s0 to t."""
        h = self.lambdas[t] - self.lambdas[s0]
        hh = -h
        h_phi_1 = F32(math.expm1(float(hh)))
        b_h = h_phi_1  # bh2: B(h) = expm1(-h)
        h_phi_k = h_phi_1 / hh - F32(1)
        b, factorial = [], 1
        for k in range(1, 3):
            b.append(h_phi_k * F32(factorial) / b_h)
            factorial *= k + 1
            h_phi_k = h_phi_k / hh - F32(1) / F32(factorial)
        a_t = self.alpha_t[t]
        return float(self.sigma_t[t] / self.sigma_t[s0]), float(a_t * h_phi_1), float(a_t * b_h), b

    def _rk(self, si: int, s0: int, t: int) -> np.float32:
        return (self.lambdas[si] - self.lambdas[s0]) / (self.lambdas[t] - self.lambdas[s0])

    def step(self, model_output: Any, i: int, sample: Any, noise: np.ndarray | None = None,
             guide: Guide | None = None) -> Any:
        if noise is not None:
            raise OptionError("UniPC adds no noise; pass noise=None")
        x0 = self._convert(model_output, i, sample, guide)
        if i > 0:  # UniC: correct this step's sample with the model output just computed
            ratio, phi, bh, b = self._coefficients(i, i - 1)
            m0 = self._x0[1]
            base = self._last_sample * ratio - m0 * phi
            if self._last_order == 1:
                sample = base - ((x0 - m0) * 0.5) * bh
            else:
                rk = self._rk(i - 2, i - 1, i)
                rhos = np.linalg.solve(np.array([[1, 1], [rk, 1]], F32), np.array(b, F32))
                corr = ((self._x0[0] - m0) / float(rk)) * float(rhos[0])
                sample = base - (corr + (x0 - m0) * float(rhos[1])) * bh
        self._remember(x0)
        order = min(2, self.num_inference_steps - i, 1 if i == 0 else 2)
        self._last_order, self._last_sample = order, sample
        ratio, phi, bh, _ = self._coefficients(i + 1, i)
        prev = sample * ratio - x0 * phi
        if order == 2:  # UniP-2: rho_p = 0.5
            rk = self._rk(i - 1, i, i + 1)
            prev = prev - ((self._x0[0] - x0) / float(rk) * 0.5) * bh
        return prev


# one per name in the package format's SAMPLERS (tests/test_policy_families.py holds them together)
SCHEDULERS = {cls.name: cls for cls in (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                                        UniPCMultistepScheduler)}


def make_scheduler(sampler: str, config: SchedulerConfig, num_inference_steps: int) -> Scheduler:
    """A scheduler by name ("ddim", "ddpm", "dpmsolver++", "unipc"; case-insensitive)."""
    if not isinstance(sampler, str) or sampler.lower() not in SCHEDULERS:
        raise OptionError(f"unknown sampler {sampler!r} (supported: {list(SAMPLERS)})")
    return SCHEDULERS[sampler.lower()](config, num_inference_steps)
