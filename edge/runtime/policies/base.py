"""What every policy runner shares: package graphs on a backend, observation checks, LeRobot's API names.

A runner mirrors LeRobot's policy API: `reset()`, `select_action(obs)` (one action, queue semantics)
and `predict_action_chunk(obs)`; inputs are raw robot observations, outputs are policy-unit actions.
Every call checks its observation first (edge/runtime/observation.py), whether or not it runs a graph, and
every chunk a graph returns is checked for non-finite actions before any of it is used.

A runner owns the graph sessions it loads and closes them in `close()` (also on leaving `with`). It closes its
backend too when it made it (`owns_backend`, set by `edge.load_policy`); a backend the caller passed in stays the
caller's to close. After `close()`, select_action, predict_action_chunk, observe and plan raise BackendError.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from types import MappingProxyType
from typing import Any, ClassVar, Mapping

import numpy as np

from edge.errors import BackendError, OptionError, PolicyOutputError
from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.normalize import Normalizer
from edge.runtime.observation import DEFAULT_OOD_MARGIN, ObservationProcessor
from edge.runtime.package import PolicyPackage


class PolicyRunner(ABC):
    """Options every family takes: `ood_margin`, standard deviations beyond the training range at which a state
    value counts as out of distribution (see `out_of_distribution`).

    `owns_backend`: True when `close()` closes the backend too (edge.load_policy made it); False for a backend
    the caller passed in.
    """

    policy_type: ClassVar[str]
    owns_backend: bool = False

    def __init__(self, package: PolicyPackage, backend: Backend, ood_margin: float = DEFAULT_OOD_MARGIN,
                 **options: Any):
        if options:
            raise OptionError(f"{self.policy_type} policies take no option(s) {sorted(options)}")
        m = package.manifest
        self.package = package
        self.backend = backend
        self.chunking = m.chunking
        self.action_dim = m.action.dim
        self.observation_processor = ObservationProcessor.for_manifest(m, ood_margin)
        self.unnormalize = Normalizer(m.action.normalization, (m.action.dim,)).inverse
        self.graphs: dict[str, GraphSession] = {}
        self.closed = False
        try:
            for name in self.graph_names():
                self.graphs[name] = backend.load(package, name)
        except BaseException:
            self._close_graphs()
            raise
        self.steps = 0  # select_action calls since reset()
        self._queue: deque[np.ndarray] = deque(maxlen=self.chunking.n_action_steps)  # LeRobot's action queue
        self._ood = MappingProxyType(self.observation_processor.counts)

    def _close_graphs(self) -> None:
        for session in self.graphs.values():  # kept: a closed session refuses to run with a BackendError
            session.close()

    def close(self) -> None:
        """Close the graph sessions, then the backend if this runner made it (`owns_backend`). Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close_graphs()
        finally:
            if self.owns_backend:
                self.backend.close()

    def __enter__(self) -> "PolicyRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        """BackendError once `close()` was called: the graphs are gone (every call that may run one checks first)."""
        if self.closed:
            raise BackendError(f"the {self.policy_type} policy is closed; load it again with edge.load_policy")

    def graph_names(self) -> list[str]:
        """The package graphs this runner calls, loaded at construction (all of them unless a family says less)."""
        return list(self.package.manifest.graphs)

    @property
    def queued_actions(self) -> int:
        """Actions left in the select_action queue (0: the next select_action runs inference)."""
        return len(self._queue)

    @property
    def input_names(self) -> list[str]:
        return [inp.name for inp in self.package.manifest.inputs]

    @property
    def out_of_distribution(self) -> Mapping[str, int]:
        """Per state feature: observations since reset() with a value beyond `ood_margin` of the training statistics
        (a live read-only view; `dict(...)` it for a snapshot)."""
        return self._ood

    def reset(self) -> None:
        """Clear queues, history, the step count and the out-of-distribution counts; call at every episode start."""
        self.steps = 0
        self._queue.clear()
        self.observation_processor.reset()

    @abstractmethod
    def select_action(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """One action (action_dim,) float32 in policy units, with LeRobot's queueing semantics."""

    @abstractmethod
    def predict_action_chunk(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        """A whole chunk (chunk, action_dim) float32 in policy units; does not touch the queue."""

    @abstractmethod
    def observe(self, observation: Mapping[str, np.ndarray]) -> Any:
        """Check and record one tick's observation and return what `plan` needs to act on it now.

        Asynchronous execution calls this on the control thread every tick and hands the result to
        `plan` on the inference thread, so `plan` must not read mutable runner state.
        """

    @abstractmethod
    def plan(self, context: Any, committed: np.ndarray | None = None, delay: int = 0) -> np.ndarray:
        """Actions (P, action_dim) in policy units from an `observe` result: row 0 is for the tick it was observed
        at (edge.robot.executors.Planner). `committed` (k, action_dim): the actions the executor's timeline will
        execute from that tick on; `delay`: how many of them execute while this chunk is computed. Families that
        do not guide their sampling with them ignore both (the executor merges)."""

    @abstractmethod
    def plan_window(self, window: Mapping[str, np.ndarray], committed: np.ndarray, delay: int,
                    seed: int) -> np.ndarray:
        """Serving (edge/runtime/wire.py): `plan` for a normalised observation window {input: (n_obs_steps, ...)},
        the family's randomness drawn from default_rng(seed). The server calls it once per request, in order."""

    @abstractmethod
    def plan_batch(self, windows: list[Mapping[str, np.ndarray]], committed: list[np.ndarray], delays: list[int],
                   seeds: list[int], graphs: Mapping[str, GraphSession], batch: int) -> np.ndarray:
        """Serving on batch graphs: `plan_window` for n <= `batch` rows at once, row i from windows[i], committed[i],
        delays[i] and its own default_rng(seeds[i]); `graphs` are this runner's graphs exported with batch `batch`
        (edge/runtime/package/batches.py), the rows padded to it with copies of row 0. Returns the normalised
        (n, P, action_dim) chunks, unchecked: the caller refuses a non-finite row alone (`actions`)."""

    def actions(self, normalized: np.ndarray, step: int | None = None) -> np.ndarray:
        """Unnormalised rows of a chunk, refused with PolicyOutputError if any value is not finite.

        `step`: the select_action step the chunk's first row is for (None: a chunk predicted or planned)."""
        with np.errstate(over="ignore", invalid="ignore"):  # a huge graph output overflows here: refused below
            actions = self.unnormalize(normalized)
        finite = np.isfinite(actions)
        if not finite.all():
            row, index = (int(v) for v in np.argwhere(~finite)[0])
            bad = np.flatnonzero(~finite[row]).tolist()
            when = f"step {step + row}" if step is not None else f"row {row} of the chunk"
            ood = {k: v for k, v in self._ood.items() if v}
            raise PolicyOutputError(f"the {self.policy_type} policy returned a non-finite action for {when}: action "
                                    f"index {bad} is {actions[row, index]}; observations out of distribution so far: "
                                    f"{ood or 'none'}")
        return actions


def batched(tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add the leading batch dimension of 1 the graphs are exported with."""
    return {k: v[None] for k, v in tensors.items()}


def pad_rows(rows: list[np.ndarray], batch: int) -> np.ndarray:
    """Rows stacked on a new batch axis, padded to `batch` with copies of row 0 (a real row: no odd values in
    the padding's computation); the caller drops the padding rows."""
    return np.stack(rows + [rows[0]] * (batch - len(rows)))
