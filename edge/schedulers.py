"""diffusers' DDPMScheduler and DDIMScheduler, as LeRobot's Diffusion Policy configures them, in numpy float32.

Formula for formula with diffusers (scheduling_ddpm.py / scheduling_ddim.py): the beta schedules
linear / scaled_linear / squaredcos_cap_v2, "leading" / "linspace" / "trailing" timestep spacing with
steps_offset, epsilon or sample prediction, clip_sample, DDIM with eta = 0 and set_alpha_to_one, DDPM with
"fixed_small" variance. Per-step constants are float32 scalars computed in diffusers' order and kept as
Python floats, so `step`'s array arithmetic is float32 on numpy 1.x and 2.x alike and also runs unchanged
on torch tensors (the exporter unrolls DDIM into fused graphs with these very constants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import OptionError

SAMPLERS = ("ddim", "ddpm")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
PREDICTION_TYPES = ("epsilon", "sample")
TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
F32 = np.float32


@dataclass
class SchedulerConfig:
    """The training-time noise schedule (from the checkpoint) plus diffusers' defaults LeRobot leaves alone."""

    num_train_timesteps: int
    beta_start: float
    beta_end: float
    beta_schedule: str
    prediction_type: str
    clip_sample: bool
    clip_sample_range: float
    set_alpha_to_one: bool = True
    steps_offset: int = 0
    timestep_spacing: str = "leading"
    variance_type: str = "fixed_small"

    def __post_init__(self) -> None:
        for name, value, allowed in (("beta_schedule", self.beta_schedule, BETA_SCHEDULES),
                                     ("prediction_type", self.prediction_type, PREDICTION_TYPES),
                                     ("timestep_spacing", self.timestep_spacing, TIMESTEP_SPACINGS),
                                     ("variance_type", self.variance_type, ("fixed_small",))):
            if value not in allowed:
                raise OptionError(f"scheduler {name} {value!r} is not supported (supported: {list(allowed)})")
        if self.num_train_timesteps < 1:
            raise OptionError(f"num_train_timesteps must be >= 1, got {self.num_train_timesteps}")


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
    """One sampler at a fixed number of inference steps; iterate `timesteps`, call `step` for each."""

    name = "base"

    def __init__(self, config: SchedulerConfig, num_inference_steps: int):
        n = config.num_train_timesteps
        if not isinstance(num_inference_steps, (int, np.integer)) or isinstance(num_inference_steps, bool):
            raise OptionError(f"num_inference_steps must be an integer, got {num_inference_steps!r}")
        if not 1 <= num_inference_steps <= n:
            raise OptionError(f"num_inference_steps {num_inference_steps} is outside 1..{n} (the checkpoint was "
                             f"trained with num_train_timesteps={n})")
        self.config = config
        self.num_inference_steps = k = int(num_inference_steps)
        self.alphas_cumprod = alphas_cumprod(config)
        if config.timestep_spacing == "leading":
            ts = (np.arange(0, k) * (n // k)).round()[::-1].astype(np.int64) + config.steps_offset
        elif config.timestep_spacing == "linspace":
            ts = np.linspace(0, n - 1, k).round()[::-1].astype(np.int64)
        else:
            ts = np.round(np.arange(n, 0, -n / k)).astype(np.int64) - 1
        self.timesteps: np.ndarray = ts.copy()

    def _alpha(self, t: int) -> np.float32:
        return self.alphas_cumprod[t]

    def _x0_eps(self, model_output: Any, sample: Any, alpha: np.float32) -> tuple[Any, Any]:
        """(clipped predicted x_0, predicted noise) from the model output, as diffusers orders it."""
        sqrt_a, sqrt_b = float(np.sqrt(alpha)), float(np.sqrt(F32(1) - alpha))
        if self.config.prediction_type == "epsilon":
            x0, eps = (sample - model_output * sqrt_b) / sqrt_a, model_output
        else:
            x0 = model_output
            eps = (sample - x0 * sqrt_a) / sqrt_b
        if self.config.clip_sample:
            r = float(self.config.clip_sample_range)
            x0 = x0.clip(-r, r)
        return x0, eps

    def step(self, model_output: Any, t: int, sample: Any, noise: np.ndarray | None = None) -> Any:
        """x_t → x_(t-1). `noise` (sample's shape) is DDPM's variance noise; DDIM (eta 0) takes none."""
        raise NotImplementedError


class DDIMScheduler(Scheduler):
    """diffusers.DDIMScheduler.step with eta = 0 (deterministic); the previous timestep is t - N // K."""

    name = "ddim"

    def step(self, model_output: Any, t: int, sample: Any, noise: np.ndarray | None = None) -> Any:
        if noise is not None:
            raise OptionError("DDIM with eta = 0 adds no noise; pass noise=None")
        prev_t = int(t) - self.config.num_train_timesteps // self.num_inference_steps
        alpha = self._alpha(int(t))
        if prev_t >= 0:
            alpha_prev = self._alpha(prev_t)
        else:
            alpha_prev = F32(1) if self.config.set_alpha_to_one else self.alphas_cumprod[0]
        x0, eps = self._x0_eps(model_output, sample, alpha)
        return x0 * float(np.sqrt(alpha_prev)) + eps * float(np.sqrt(F32(1) - alpha_prev))


class DDPMScheduler(Scheduler):
    """diffusers.DDPMScheduler.step, "fixed_small" variance; noise is added at every t > 0."""

    name = "ddpm"

    def step(self, model_output: Any, t: int, sample: Any, noise: np.ndarray | None = None) -> Any:
        t = int(t)
        index = int(np.flatnonzero(self.timesteps == t)[0])
        prev_t = int(self.timesteps[index + 1]) if index + 1 < len(self.timesteps) else -1
        alpha = self._alpha(t)
        alpha_prev = self._alpha(prev_t) if prev_t >= 0 else F32(1)
        beta, beta_prev = F32(1) - alpha, F32(1) - alpha_prev
        current_alpha = alpha / alpha_prev
        current_beta = F32(1) - current_alpha
        x0, _ = self._x0_eps(model_output, sample, alpha)
        x0_coeff = float(np.sqrt(alpha_prev) * current_beta / beta)
        sample_coeff = float(np.sqrt(current_alpha) * beta_prev / beta)
        prev = x0 * x0_coeff + sample * sample_coeff
        if t > 0:
            if noise is None:
                raise OptionError(f"DDPM needs variance noise at t = {t} > 0")
            variance = max(beta_prev / beta * current_beta, F32(1e-20))
            prev = prev + noise * float(np.sqrt(variance))
        return prev


def make_scheduler(sampler: str, config: SchedulerConfig, num_inference_steps: int) -> Scheduler:
    """A DDIM or DDPM scheduler by name ("ddim" / "ddpm", case-insensitive)."""
    classes = {"ddim": DDIMScheduler, "ddpm": DDPMScheduler}
    if not isinstance(sampler, str) or sampler.lower() not in classes:
        raise OptionError(f"unknown sampler {sampler!r} (supported: {list(SAMPLERS)})")
    return classes[sampler.lower()](config, num_inference_steps)
