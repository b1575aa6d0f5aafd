"""What every policy runner shares: package graphs on a backend, observation checks, LeRobot's API names.

A runner mirrors LeRobot's policy API: `reset()`, `select_action(obs)` (one action, queue semantics)
and `predict_action_chunk(obs)`; inputs are raw robot observations, outputs are robot-unit actions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping

import numpy as np

from edge.backends.base import Backend, GraphSession
from edge.normalize import Normalizer
from edge.observation import ObservationProcessor
from edge.package import PolicyPackage


class PolicyRunner(ABC):
    policy_type: ClassVar[str]

    def __init__(self, package: PolicyPackage, backend: Backend, **options: Any):
        if options:
            raise TypeError(f"{self.policy_type} policies take no option(s) {sorted(options)}")
        m = package.manifest
        self.package = package
        self.backend = backend
        self.chunking = m.chunking
        self.action_dim = m.action.dim
        self.observation = ObservationProcessor(m.inputs)
        self.unnormalize = Normalizer(m.action.normalization, (m.action.dim,), m.action.name).inverse
        self.graphs: dict[str, GraphSession] = {name: backend.load(package, name) for name in self.graph_names()}

    def graph_names(self) -> list[str]:
        """The package graphs this runner calls, loaded at construction (all of them unless a family says less)."""
        return list(self.package.manifest.graphs)

    @property
    def queued_actions(self) -> int:
        """Actions left in the select_action queue (0: the next select_action runs inference).

        Every runner keeps LeRobot's action queue as `self._queue`, created in `reset()`."""
        return len(self._queue)

    @property
    def input_names(self) -> list[str]:
        return [inp.name for inp in self.package.manifest.inputs]

    @abstractmethod
    def reset(self) -> None:
        """Clear queues and history; call at the start of every episode."""

    @abstractmethod
    def select_action(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action (action_dim,) float32 in robot units, with LeRobot's queueing semantics."""

    @abstractmethod
    def predict_action_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """A whole chunk (chunk, action_dim) float32 in robot units; does not touch the queue."""

    def observe(self, observation: Mapping[str, np.ndarray]) -> Any:
        """Record one tick's observation and return what `plan` needs to act on it now.

        Asynchronous execution calls this on the control thread every tick and hands the result to
        `plan` on the inference thread, so `plan` must not read mutable runner state. Policies without
        observation history (ACT) just pass the observation through.
        """
        return observation

    def plan(self, context: Any) -> np.ndarray:
        """Actions (n, action_dim) in robot units from an `observe` result: row 0 is for the tick it was
        observed at. History-based policies override both methods."""
        return self.predict_action_chunk(context)


def batched(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add the leading batch dimension of 1 the graphs are exported with."""
    return {k: v[None] for k, v in tensors.items()}
