"""Diffusion Policy runner: LeRobot's DiffusionPolicy.select_action semantics on exported graphs.

A history of n_obs_steps normalised observations (the first one copied to fill it, as LeRobot's queues
do) is encoded to global_cond when the action queue is empty; a chunk is sampled from noise with a numpy
scheduler, DDIM, DDPM, DPM-Solver++ or UniPC (a fused K-step graph when the package has one for the sampler
and K, else one denoiser call per step), and chunk[n_obs_steps-1 : n_obs_steps-1+n_action_steps] is queued.
With `rtc`, `plan` steers each chunk toward the actions already committed (edge/runtime/guidance.py).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Mapping

import numpy as np

from edge.errors import OptionError
from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.guidance import RTCOptions, batch_guide, chunk_guide
from edge.runtime.normalize import Normalizer
from edge.runtime.package import DiffusionSection, PolicyPackage
from edge.runtime.policies.base import PolicyRunner, pad_rows
from edge.runtime.schedulers import Guide, make_scheduler


class DiffusionRunner(PolicyRunner):
    """Options: `sampler` ("ddim" | "ddpm" | "dpmsolver++" | "unipc"), `num_inference_steps` K, `seed` for the noise
    generator, `fused` (default True: use a fused graph when one matches; False forces per-step calls) and `rtc`
    (RTCOptions, or True for the defaults: real-time chunking in `plan`, which samples per step)."""

    policy_type = "diffusion"

    def __init__(self, package: PolicyPackage, backend: Backend, sampler: str | None = None,
                 num_inference_steps: int | None = None, seed: int | None = None, fused: bool = True,
                 rtc: RTCOptions | bool | None = None, **options: Any):
        section: DiffusionSection = package.manifest.policy
        self.scheduler = make_scheduler(sampler or section.sampler, section.scheduler,
                                        section.num_inference_steps if num_inference_steps is None
                                        else num_inference_steps)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise OptionError(f"seed must be a non-negative int or None, got {seed!r}")
        self.fused_graph = next((name for name, spec in section.fused_graphs.items()
                                 if fused and spec.sampler == self.scheduler.name
                                 and spec.num_inference_steps == self.scheduler.num_inference_steps), None)
        super().__init__(package, backend, **options)
        self.rng = np.random.default_rng(seed)
        self.chunk_shape = (1, self.chunking.chunk_size, self.action_dim)
        self.normalize_action = Normalizer(package.manifest.action.normalization, (self.action_dim,))
        self.rtc: RTCOptions | None = None
        self.use_rtc(RTCOptions() if rtc is True else (rtc or None))
        self.reset()

    def use_rtc(self, options: RTCOptions | None) -> None:
        """Turn real-time chunking on (options) or off (None); loads the per-step denoiser if only a fused graph is."""
        if options is not None and not isinstance(options, RTCOptions):
            raise OptionError(f"rtc must be RTCOptions, True or None, got {options!r}")
        if options is not None and "denoiser" not in self.graphs:
            self.graphs["denoiser"] = self.backend.load(self.package, "denoiser")
        self.rtc = options

    def graph_names(self) -> list[str]:
        """The encoder and either the fused graph or the per-step denoiser: a U-Net's weights are loaded once."""
        return ["obs_encoder", self.fused_graph or "denoiser"]

    def reset(self) -> None:
        super().reset()
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.chunking.n_obs_steps)

    @staticmethod
    def _push(history: deque, observation: dict[str, np.ndarray]) -> None:
        """LeRobot's populate_queues: fill an empty history with copies of the first observation."""
        history.extend([observation] * (1 if history else history.maxlen))

    def encode(self, history: deque) -> np.ndarray:
        """(1, global_cond_dim) from a full history, each input stacked to (1, n_obs_steps, ...)."""
        feeds = {name: np.stack([obs[name] for obs in history])[None] for name in self.input_names}
        return self.graphs["obs_encoder"].run(feeds)["global_cond"]

    def denoise(self, global_cond: np.ndarray, noise: np.ndarray | None = None, guide: Guide | None = None) -> np.ndarray:
        """The normalised (horizon, action_dim) chunk sampled from `noise` (drawn from the generator if None);
        `guide` steers every step's x_0 prediction (per-step calls: a fused graph cannot be steered)."""
        if noise is None:
            noise = self.rng.standard_normal(self.chunk_shape, dtype=np.float32)
        else:
            noise = np.asarray(noise, dtype=np.float32)
            if noise.size != int(np.prod(self.chunk_shape)):
                raise OptionError(f"noise must have shape {self.chunk_shape[1:]}, got {noise.shape}")
            noise = noise.reshape(self.chunk_shape)
        return self._sample(self.graphs, global_cond, noise, guide,
                            lambda: self.rng.standard_normal(self.chunk_shape, dtype=np.float32))[0]

    def _sample(self, graphs: Mapping[str, GraphSession], global_cond: np.ndarray, noise: np.ndarray,
                guide: Guide | None, draw: Callable[[], np.ndarray]) -> np.ndarray:
        """(B, horizon, action_dim) normalised chunks from (B, ...) noise on graphs of batch B; `draw()` gives DDPM's
        variance noise for each step with t > 0. The scheduler's step is elementwise with per-step scalar
        constants, so one scheduler steps the B rows exactly as B schedulers would."""
        if self.fused_graph is not None and guide is None:
            return graphs[self.fused_graph].run({"noise": noise, "global_cond": global_cond})["action"]
        sample, denoiser = noise, graphs["denoiser"]
        for i, t in enumerate(self.scheduler.timesteps):
            feeds = {"sample": sample, "timestep": np.full((len(sample),), t, dtype=np.float32),
                     "global_cond": global_cond}
            model_output = denoiser.run(feeds)["model_output"]
            variance_noise = draw() if self.scheduler.name == "ddpm" and t > 0 else None
            sample = self.scheduler.step(model_output, i, sample, noise=variance_noise, guide=guide)
        return sample

    def predict_action_chunk(self, observation: Mapping[str, np.ndarray], noise: np.ndarray | None = None) -> np.ndarray:
        """The whole (horizon, action_dim) chunk for the history plus `observation`; state is left untouched."""
        self._check_open()
        history = deque(self._history, maxlen=self._history.maxlen)
        self._push(history, self.observation_processor(observation))
        return self.actions(self.denoise(self.encode(history), noise))

    def select_action(self, observation: Mapping[str, np.ndarray], noise: np.ndarray | None = None) -> np.ndarray:
        """One action; `noise` (horizon, action_dim) seeds the chunk if one is sampled at this step."""
        self._check_open()
        self._push(self._history, self.observation_processor(observation))
        step, self.steps = self.steps, self.steps + 1
        if not self._queue:
            start = self.chunking.n_obs_steps - 1
            chunk = self.denoise(self.encode(self._history), noise)
            self._queue.extend(self.actions(chunk[start : start + self.chunking.n_action_steps], step))
        return self._queue.popleft()

    def observe(self, observation: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], ...]:
        """Asynchronous execution: record the tick's observation, return a snapshot of the history."""
        self._check_open()
        self._push(self._history, self.observation_processor(observation))
        return tuple(self._history)

    def plan(self, context: tuple[dict[str, np.ndarray], ...], committed: np.ndarray | None = None,
             delay: int = 0) -> np.ndarray:
        """Actions from the snapshot's last tick on: chunk[n_obs_steps-1:], policy units; with `rtc`, sampled toward
        `committed` (frozen on its first `delay` rows, then a decaying weight)."""
        self._check_open()
        guide = None
        if self.rtc is not None and committed is not None and len(committed):
            guide = chunk_guide(self.rtc, self.normalize_action(np.asarray(committed, np.float32)), delay,
                                self.chunking.n_obs_steps - 1, self.chunking.chunk_size)
        chunk = self.denoise(self.encode(deque(context)), guide=guide)
        return self.actions(chunk[self.chunking.n_obs_steps - 1 :])

    def plan_window(self, window: Mapping[str, np.ndarray], committed: np.ndarray, delay: int,
                    seed: int) -> np.ndarray:
        """Serving: `plan` for a normalised window; initial noise, then DDPM's variance noise, from default_rng(seed)."""
        self.rng = np.random.default_rng(seed)
        context = tuple({name: value[i] for name, value in window.items()} for i in range(self.chunking.n_obs_steps))
        return self.plan(context, committed, delay)

    def plan_batch(self, windows: list[Mapping[str, np.ndarray]], committed: list[np.ndarray], delays: list[int],
                   seeds: list[int], graphs: Mapping[str, GraphSession], batch: int) -> np.ndarray:
        """Serving: the chunks of n windows in one pass over the batch graphs. Row i draws its initial noise, then
        DDPM's variance noise, from its own default_rng(seeds[i]) and is steered (`rtc`) toward its own committed
        rows, exactly as `plan_window` would for it alone."""
        self._check_open()
        rngs = [np.random.default_rng(seed) for seed in seeds]

        def draw() -> np.ndarray:
            """One (horizon, action_dim) draw from each row's own stream, padded to the batch."""
            return pad_rows([r.standard_normal(self.chunk_shape[1:], dtype=np.float32) for r in rngs], batch)

        cond = graphs["obs_encoder"].run({name: pad_rows([w[name] for w in windows], batch)
                                          for name in self.input_names})["global_cond"]
        guide = None
        if self.rtc is not None:
            guide = batch_guide(self.rtc, [self.normalize_action(np.asarray(c, np.float32)) for c in committed],
                                delays, self.chunking.n_obs_steps - 1, self.chunking.chunk_size, batch)
        return self._sample(graphs, cond, draw(), guide, draw)[: len(windows), self.chunking.n_obs_steps - 1 :]
