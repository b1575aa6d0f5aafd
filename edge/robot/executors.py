"""Action execution: turns a policy into one action per control tick.

`SyncExecutor` is LeRobot's `select_action` as is: inference runs inside the tick that empties the
queue. `AsyncExecutor` never blocks the tick: a worker thread computes the next chunk while the
current one executes, starting when at most `threshold` future actions remain (by default every
n_action_steps ticks, the rest of the chunk covering the inference latency). A chunk planned
from the observation of tick t0 supplies actions for ticks t0, t0+1, ...; those whose tick has passed
by the time inference returns are dropped, and overlaps with actions already queued are merged by
`merge`: "latest" (the new chunk wins), "average" (equal weights), "weighted" (a linear cross-fade
from old to new across the overlap) or "ensemble" (ACT's temporal ensembling, weight exp(-coeff*i),
i = 0 the oldest prediction).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

import numpy as np

from edge.errors import OptionError, PolicyOutputError
from edge.runtime.package import Chunking
from edge.runtime.policies.base import PolicyRunner

MERGE_RULES = ("latest", "average", "weighted", "ensemble")


class Planner(Protocol):
    """What an executor needs from a policy: PolicyRunner is one; the remote (Triton) planner is another."""

    @property
    def action_dim(self) -> int: ...

    @property
    def chunking(self) -> Chunking: ...

    @property
    def out_of_distribution(self) -> Mapping[str, int]: ...

    def reset(self) -> None: ...

    def observe(self, observation: Mapping[str, np.ndarray]) -> Any:
        """On the control thread, cheap: validate, normalise, update the observation history; return the context a
        chunk is planned from."""

    def plan(self, context: Any, committed: np.ndarray, delay: int) -> np.ndarray:
        """On the worker thread. `committed`: float32 (k, action_dim) policy-unit actions the timeline will execute
        from the observation tick on (k may be 0); `delay`: d, the leading rows that execute while this chunk is
        computed (the frozen prefix). Returns float32 (P, action_dim) in policy units, row 0 = the observation tick."""


@dataclass
class StepResult:
    """What the executor hands the control loop for one tick."""

    action: np.ndarray | None  # None: no action available yet, hold the last goal
    queue_depth: int  # future actions ready after this one
    inference_ms: float | None  # latency of an inference that finished (or ran) during this tick
    dropped: int = 0  # stale actions discarded this tick
    out_of_distribution: Mapping[str, int] = field(default_factory=dict)  # the policy's live counts per feature


class SyncExecutor:
    """LeRobot semantics: `select_action` every tick, inference inline when the queue is empty."""

    def __init__(self, policy: PolicyRunner):
        self.policy = policy

    def reset(self) -> None:
        self.policy.reset()

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        needs_inference = self.policy.queued_actions == 0  # always, with ACT's temporal ensembling
        t0 = time.perf_counter()
        action = self.policy.select_action(observation)
        elapsed = (time.perf_counter() - t0) * 1e3
        return StepResult(action, self.policy.queued_actions, elapsed if needs_inference else None,
                          out_of_distribution=self.policy.out_of_distribution)

    def close(self) -> None:
        pass


class _Timeline:
    """Per-tick accumulators for merged actions: weighted sums, weight totals, prediction counts."""

    def __init__(self, dim: int):
        self.dim = dim
        self.start = 0  # tick of row 0
        self.sum = np.zeros((0, dim))
        self.weight = np.zeros(0)
        self.count = np.zeros(0, dtype=np.int64)

    def committed(self, tick: int) -> np.ndarray:
        """float32 (k, dim): the merged actions planned for `tick` on (what the timeline will execute)."""
        skip = max(0, tick - self.start)
        return (self.sum[skip:] / self.weight[skip:, None]).astype(np.float32)

    def depth_from(self, tick: int) -> int:
        return max(0, self.start + len(self.weight) - tick)

    def pop(self, tick: int) -> tuple[np.ndarray | None, int]:
        """The action for `tick` (None if none planned) and how many older rows were discarded."""
        skip = max(0, tick - self.start)
        dropped = min(skip, len(self.weight))
        self._trim(skip)
        if len(self.weight) == 0 or self.start != tick:
            return None, dropped
        action = (self.sum[0] / self.weight[0]).astype(np.float32)
        self._trim(1)
        return action, dropped

    def _trim(self, n: int) -> None:
        self.sum, self.weight, self.count = self.sum[n:], self.weight[n:], self.count[n:]
        self.start += n

    def merge(self, t0: int, chunk: np.ndarray, rule: str, coeff: float) -> int:
        """Merge a chunk whose row 0 is for tick t0; returns how many of its rows were already stale."""
        stale = max(0, self.start - t0) if len(self.weight) else 0
        if len(self.weight) == 0:
            self.start = max(self.start, t0)
            stale = self.start - t0
        chunk = chunk[stale:].astype(np.float64)
        offset = t0 + stale - self.start
        n_old = max(0, min(len(self.weight) - offset, len(chunk)))
        total = offset + len(chunk)
        if total > len(self.weight):
            grow = total - len(self.weight)
            self.sum = np.concatenate([self.sum, np.zeros((grow, self.dim))])
            self.weight = np.concatenate([self.weight, np.zeros(grow)])
            self.count = np.concatenate([self.count, np.zeros(grow, dtype=np.int64)])
        rows = slice(offset, offset + len(chunk))
        overlap = slice(offset, offset + n_old)
        if rule == "latest" or n_old == 0:
            self.sum[rows], self.weight[rows], self.count[rows] = chunk, 1.0, 1
            return stale
        if rule == "weighted":  # cross-fade: old weight falls linearly to 0 over the overlap
            alpha = (np.arange(1, n_old + 1) / (n_old + 1))[:, None]
            old = self.sum[overlap] / self.weight[overlap, None]
            self.sum[overlap] = (1 - alpha) * old + alpha * chunk[:n_old]
            self.weight[overlap] = 1.0
        else:  # average / ensemble: the new prediction is the count-th for that tick
            w = np.ones(n_old) if rule == "average" else np.exp(-coeff * self.count[overlap])
            self.sum[overlap] += w[:, None] * chunk[:n_old]
            self.weight[overlap] += w
        self.count[overlap] += 1
        new = slice(offset + n_old, offset + len(chunk))
        self.sum[new], self.weight[new], self.count[new] = chunk[n_old:], 1.0, 1
        return stale


class AsyncExecutor:
    """Inference on a worker thread; the control tick only merges finished chunks and pops an action."""

    def __init__(self, policy: Planner, threshold: int | None = None, merge: str = "latest",
                 ensemble_coeff: float = 0.01):
        if merge not in MERGE_RULES:
            raise OptionError(f"unknown merge rule {merge!r}; choose one of {MERGE_RULES}")
        self.policy = policy
        self.threshold = threshold  # None: plan length - n_action_steps, a new chunk every n_action_steps ticks
        self.merge_rule = merge
        self.coeff = ensemble_coeff
        self._timeline = _Timeline(policy.action_dim)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._job: tuple[int, Any, np.ndarray, int] | None = None
        self._done: list[tuple[int, np.ndarray, float]] = []
        self._error: BaseException | None = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._worker, name="inference", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            self.policy.reset()
            self._timeline = _Timeline(self.policy.action_dim)
            self._done.clear()

    def _worker(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            with self._lock:
                job, self._job = self._job, None
            if job is None:
                continue
            tick, context, committed, delay = job
            t0 = time.perf_counter()
            try:
                chunk = self.policy.plan(context, committed, delay)
            except PolicyOutputError as exc:  # name the tick the chunk was planned at
                with self._lock:
                    self._error, self._busy = PolicyOutputError(f"chunk planned at tick {tick}: {exc}"), False
                continue
            except BaseException as exc:  # surfaced to the control loop on its next tick
                with self._lock:
                    self._error, self._busy = exc, False
                continue
            with self._lock:
                self._done.append((tick, chunk, (time.perf_counter() - t0) * 1e3))
                self._busy = False

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        context = self.policy.observe(observation)
        latency = None
        dropped = 0
        with self._lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            for t0, chunk, ms in self._done:
                if self.threshold is None:
                    self.threshold = max(0, len(chunk) - self.policy.chunking.n_action_steps)
                dropped += self._timeline.merge(t0, chunk, self.merge_rule, self.coeff)
                latency = ms
            self._done.clear()
            threshold = 0 if self.threshold is None else self.threshold
            if not self._busy and self._timeline.depth_from(tick) <= threshold:
                self._busy = True
                self._job = (tick, context, self._timeline.committed(tick), 0)
                self._wake.set()
            action, stale = self._timeline.pop(tick)
            depth = self._timeline.depth_from(tick + 1)
        return StepResult(action, depth, latency, dropped + stale, self.policy.out_of_distribution)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
