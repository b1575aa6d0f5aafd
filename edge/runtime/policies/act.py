"""ACT runner: LeRobot's ACTPolicy.select_action semantics on an exported graph.

Either a queue of n_action_steps actions refilled from a fresh chunk when empty, or, with
temporal_ensemble_coeff set, a new chunk every step blended online exactly as LeRobot's
ACTTemporalEnsembler does (weights exp(-coeff * i), i = 0 the oldest prediction).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from edge.errors import OptionError
from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.package import PolicyPackage
from edge.runtime.policies.base import PolicyRunner, batched, pad_rows


class TemporalEnsembler:
    """Online weighted average over overlapping chunks (normalised actions), as LeRobot computes it."""

    def __init__(self, coeff: float, chunk_size: int):
        self.chunk_size = chunk_size
        self.weights = np.exp(-np.float32(coeff) * np.arange(chunk_size, dtype=np.float32)).astype(np.float32)
        self.weights_cumsum = np.cumsum(self.weights, dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        self.actions: np.ndarray | None = None  # (remaining, action_dim)
        self.counts: np.ndarray | None = None  # (remaining,) how many predictions are averaged in

    def update(self, chunk: np.ndarray) -> np.ndarray:
        """Blend a new (chunk_size, action_dim) prediction in and pop the action for this step."""
        if self.actions is None:
            self.actions = chunk.copy()
            self.counts = np.ones(self.chunk_size, dtype=np.int64)
        else:
            idx = self.counts - 1
            self.actions = self.actions * self.weights_cumsum[idx, None]
            self.actions = self.actions + chunk[:-1] * self.weights[self.counts, None]
            self.actions = self.actions / self.weights_cumsum[self.counts, None]
            self.counts = np.minimum(self.counts + 1, self.chunk_size)
            self.actions = np.concatenate([self.actions, chunk[-1:]], axis=0)
            self.counts = np.concatenate([self.counts, [1]])
        action, self.actions, self.counts = self.actions[0], self.actions[1:], self.counts[1:]
        return action


class ACTRunner(PolicyRunner):
    policy_type = "act"

    def __init__(self, package: PolicyPackage, backend: Backend, temporal_ensemble_coeff: float | None = None,
                 **options: Any):
        if temporal_ensemble_coeff is not None and (
                isinstance(temporal_ensemble_coeff, bool) or not isinstance(temporal_ensemble_coeff, (int, float))
                or not math.isfinite(temporal_ensemble_coeff)):  # refused before any graph is loaded
            raise OptionError(f"temporal_ensemble_coeff must be a finite number, got {temporal_ensemble_coeff!r}")
        super().__init__(package, backend, **options)
        if temporal_ensemble_coeff is not None:
            self.chunking = dataclasses.replace(self.chunking, temporal_ensemble_coeff=float(temporal_ensemble_coeff))
        coeff = self.chunking.temporal_ensemble_coeff
        self.ensembler = TemporalEnsembler(coeff, self.chunking.chunk_size) if coeff is not None else None
        self.reset()

    def reset(self) -> None:
        super().reset()
        if self.ensembler is not None:
            self.ensembler.reset()

    def _normalized_chunk(self, checked: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._run(self.observation_processor.normalize(checked))

    def _run(self, normalized: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.graphs["act"].run(batched(normalized))["action"][0]

    def predict_action_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        self._check_open()
        return self.actions(self._normalized_chunk(self.observation_processor.check(observation)))

    def select_action(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        self._check_open()
        checked = self.observation_processor.check(observation)  # every call, also when the queue still has actions
        step, self.steps = self.steps, self.steps + 1
        if self.ensembler is not None:
            chunk = self._normalized_chunk(checked)
            self.actions(chunk, step)
            return self.actions(self.ensembler.update(chunk)[None], step)[0]
        if not self._queue:
            self._queue.extend(self.actions(self._normalized_chunk(checked)[: self.chunking.n_action_steps], step))
        return self._queue.popleft()

    def observe(self, observation: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Asynchronous execution: ACT keeps no history, the checked observation is the context."""
        self._check_open()
        return self.observation_processor.check(observation)

    def plan(self, context: dict[str, np.ndarray], committed: np.ndarray | None = None,
             delay: int = 0) -> np.ndarray:
        """The chunk for an `observe` result, policy units."""
        self._check_open()
        return self.actions(self._normalized_chunk(context))

    def plan_window(self, window: Mapping[str, np.ndarray], committed: np.ndarray, delay: int,
                    seed: int) -> np.ndarray:
        """Serving: the chunk for a normalised window of one observation (ACT draws no noise)."""
        self._check_open()
        return self.actions(self._run({name: value[-1] for name, value in window.items()}))

    def plan_batch(self, windows: list[Mapping[str, np.ndarray]], committed: list[np.ndarray], delays: list[int],
                   seeds: list[int], graphs: Mapping[str, GraphSession], batch: int) -> np.ndarray:
        """Serving: the chunks of n windows in one run of the batch-`batch` graph (ACT draws no noise)."""
        self._check_open()
        feeds = {name: pad_rows([w[name][-1] for w in windows], batch) for name in self.input_names}
        return graphs["act"].run(feeds)["action"][: len(windows)]
