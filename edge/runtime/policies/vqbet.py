"""VQ-BeT runner: LeRobot's VQBeTPolicy.select_action with the code sampling done here, in numpy.

Each camera frame goes through the `encoder` graph once, when it arrives; the `policy` graph turns the
window of n_obs_steps states and image features into code logits and offsets; this runner picks one
code per residual-VQ layer (multinomial over softmax(logits / temperature) from a seeded numpy
Generator, or the arg-max with greedy=True), with `sequentially_select` asks the `secondary` graph for
the secondary logits given the primary code, then runs `decode` for the action chunk. History and
action queue follow LeRobot: the first observation fills the window, and a chunk of
action_chunk_size actions is queued whenever the queue is empty.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Mapping

import numpy as np

from edge.errors import OptionError
from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.package import PolicyPackage, VQBeTSection
from edge.runtime.policies.base import PolicyRunner, pad_rows


def sample_codes(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """One code per row of (..., C) logits, drawn from softmax(logits / temperature) by inverse CDF."""
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(logits.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.sum(cdf <= u, axis=-1)


class VQBeTRunner(PolicyRunner):
    policy_type = "vqbet"

    def __init__(self, package: PolicyPackage, backend: Backend, greedy: bool = False,
                 temperature: float | None = None, seed: int | None = None, **options: Any):
        if not isinstance(greedy, bool):  # options are refused before any graph is loaded
            raise OptionError(f"greedy must be True or False, got {greedy!r}")
        if temperature is not None:
            if greedy:
                raise OptionError("temperature has no effect with greedy=True (codes are the arg-max); pass one or the other")
            if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                    or not math.isfinite(temperature) or temperature <= 0:
                raise OptionError(f"temperature must be a finite number > 0, got {temperature!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise OptionError(f"seed must be a non-negative int or None, got {seed!r}")
        super().__init__(package, backend, **options)
        spec: VQBeTSection = package.manifest.policy
        self.sequential = spec.sequentially_select
        self.image_key = spec.image_feature
        self.state_key = next(inp.name for inp in package.manifest.inputs if inp.kind == "state")
        self.greedy = greedy
        self.temperature = spec.bet_softmax_temperature if temperature is None else float(temperature)
        self.rng = np.random.default_rng(seed)
        self._eye = np.eye(spec.codebook_size, dtype=np.float32)
        self.last_codes: np.ndarray | None = None  # (rvq_layers,) codes behind the latest chunk
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.chunking.n_obs_steps)

    def choose_codes(self, logits: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(..., C) logits → (...) int codes: arg-max when greedy, else a softmax draw from `rng` (the runner's)."""
        if self.greedy:
            return np.argmax(logits, axis=-1)
        return sample_codes(logits, self.temperature, self.rng if rng is None else rng)

    def _features(self, image: np.ndarray) -> np.ndarray:
        """One normalised CHW frame through the `encoder` graph."""
        return self.graphs["encoder"].run({self.image_key: image[None]})["image_features"][0]

    def observe(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encode the frame, append the step to the history (copied to fill it when empty), return the (1, n, ...)
        window — a fresh array, so asynchronous execution can plan from it while the history moves on."""
        self._check_open()
        current = self.observation_processor(observation)
        features = self._features(current[self.image_key])
        step = {self.state_key: current[self.state_key], "image_features": features}
        self._history.extend([step] * (self._history.maxlen if not self._history else 1))
        return {name: np.stack([h[name] for h in self._history])[None] for name in step}

    def _normalized_chunk(self, window: dict[str, np.ndarray]) -> np.ndarray:
        out = self.graphs["policy"].run(window)
        if self.sequential:
            primary = self.choose_codes(out["primary_logits"][0])
            secondary_logits = self.graphs["secondary"].run(
                {"features": out["features"], "primary_code": self._eye[primary][None]})["secondary_logits"]
            codes = np.array([primary, self.choose_codes(secondary_logits[0])])
        else:
            codes = self.choose_codes(out["logits"][0])
        self.last_codes = codes
        feeds = {"codes": self._eye[codes][None], "offsets": out["offsets"]}
        return self.graphs["decode"].run(feeds)["action"][0]

    def plan(self, context: dict[str, np.ndarray], committed: np.ndarray | None = None,
             delay: int = 0) -> np.ndarray:
        """The chunk for an `observe` window, policy units (asynchronous execution)."""
        self._check_open()
        return self.actions(self._normalized_chunk(context))

    def plan_window(self, window: Mapping[str, np.ndarray], committed: np.ndarray, delay: int,
                    seed: int) -> np.ndarray:
        """Serving: `plan` for a normalised window of frames (each encoded here), codes drawn from default_rng(seed)."""
        self._check_open()
        self.rng = np.random.default_rng(seed)
        features = np.stack([self._features(frame) for frame in window[self.image_key]])
        return self.plan({self.state_key: window[self.state_key][None], "image_features": features[None]},
                         committed, delay)

    def plan_batch(self, windows: list[Mapping[str, np.ndarray]], committed: list[np.ndarray], delays: list[int],
                   seeds: list[int], graphs: Mapping[str, GraphSession], batch: int) -> np.ndarray:
        """Serving: the chunks of n windows in one pass over the batch graphs (frame j of every window through the
        encoder at once); row i draws its codes, primary then secondary, from its own default_rng(seeds[i])."""
        self._check_open()
        rngs = [np.random.default_rng(seed) for seed in seeds]
        frames = pad_rows([w[self.image_key] for w in windows], batch)  # (B, n_obs_steps, C, H, W)
        features = np.stack([graphs["encoder"].run({self.image_key: frames[:, j]})["image_features"]
                             for j in range(frames.shape[1])], axis=1)
        out = graphs["policy"].run({self.state_key: pad_rows([w[self.state_key] for w in windows], batch),
                                    "image_features": features})

        def choose(logits: np.ndarray) -> np.ndarray:
            """Each row's codes from its own stream, padded to the batch."""
            return pad_rows([self.choose_codes(row, rng) for row, rng in zip(logits, rngs)], batch)

        if self.sequential:
            primary = choose(out["primary_logits"])
            secondary = graphs["secondary"].run({"features": out["features"], "primary_code": self._eye[primary]})
            codes = np.stack([primary, choose(secondary["secondary_logits"])], axis=1)
        else:
            codes = choose(out["logits"])
        feeds = {"codes": self._eye[codes], "offsets": out["offsets"]}
        return graphs["decode"].run(feeds)["action"][: len(windows)]

    def predict_action_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """The whole (action_chunk_size, action_dim) chunk; the observation joins the history, the queue is untouched."""
        return self.actions(self._normalized_chunk(self.observe(observation)))

    def select_action(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        window = self.observe(observation)
        step, self.steps = self.steps, self.steps + 1
        if not self._queue:
            self._queue.extend(self.actions(self._normalized_chunk(window), step))
        return self._queue.popleft()
