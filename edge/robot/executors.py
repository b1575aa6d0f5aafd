"""Action execution: turns a policy into one action per control tick.

`SyncExecutor` is LeRobot's `select_action` as is: inference runs inside the tick that empties the queue.
`AsyncExecutor` never blocks the tick: a worker thread plans the next chunk while the current one executes.
`VirtualExecutor` is the same execution on a virtual clock, for evaluation: each chunk is merged exactly D ticks
after its observation tick. Both run one core, edge/robot/chunks.py's `ChunkSchedule` (when to plan, what is
committed, where a chunk lands, the merge rules "latest", "average", "weighted", "ensemble", the guided "rtc"
and ACT's "forecast"), and both depend on a `Planner`, not on PolicyRunner.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from edge.errors import OptionError, PolicyOutputError
from edge.robot.chunks import MERGE_RULES, ChunkSchedule, DelayEstimate, Request, check_merge_rule, merge_rules
from edge.runtime.package import Chunking
from edge.runtime.policies.base import PolicyRunner

__all__ = ["MERGE_RULES", "AsyncExecutor", "Planner", "StepResult", "SyncExecutor", "VirtualExecutor", "merge_rules"]


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
    seam_jump: float | None = None  # a merge changed this tick's action by this much (max over joints), else None


class SyncExecutor:
    """LeRobot semantics: `select_action` every tick, inference inline when the queue is empty. A new chunk's first
    action is a seam against the last executed one (there is no timeline to merge into)."""

    def __init__(self, policy: PolicyRunner):  # or anything with reset() and select_action() (a scripted controller)
        self.policy = policy
        self._last: np.ndarray | None = None

    def reset(self) -> None:
        self.policy.reset()
        self._last = None

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        needs_inference = getattr(self.policy, "queued_actions", 1) == 0  # always with ACT's temporal ensembling
        t0 = time.perf_counter()
        action = self.policy.select_action(observation)
        elapsed = (time.perf_counter() - t0) * 1e3
        jump = float(np.max(np.abs(action - self._last))) if needs_inference and self._last is not None else None
        self._last = action
        return StepResult(action, getattr(self.policy, "queued_actions", 0), elapsed if needs_inference else None,
                          out_of_distribution=getattr(self.policy, "out_of_distribution", {}), seam_jump=jump or None)

    def close(self) -> None:
        pass


class _ChunkExecutor:
    """What both drivers share: observe every tick, merge what arrived, plan when due, pop this tick's action."""

    def __init__(self, planner: Planner, merge: str, delay: DelayEstimate, ensemble_coeff: float,
                 notify: Callable[[str], None] | None):
        family = getattr(planner, "policy_type", None)
        if family is not None:
            check_merge_rule(family, merge)
        elif merge not in MERGE_RULES:
            raise OptionError(f"merge rule {merge!r} does not apply to this planner; its rules: "
                              f"{', '.join(MERGE_RULES)}")
        if merge == "rtc" and getattr(planner, "rtc", None) is None:
            raise OptionError("merge rule 'rtc' needs a planner that guides its sampling (a diffusion policy "
                              "loaded with rtc=True)")
        self.policy = planner
        self.merge_rule = merge
        self.state_key = _forecast_state(planner) if merge == "forecast" else None
        self.schedule = ChunkSchedule(planner.action_dim, planner.chunking.n_action_steps, merge, delay,
                                      ensemble_coeff, notify if notify is not None else _warn)
        self._in_flight = False

    def reset(self) -> None:
        self.policy.reset()
        self.schedule.reset()

    def _submit(self, request: Request, context: Any) -> None:
        raise NotImplementedError

    def _arrived(self, tick: int) -> tuple[tuple[Request, np.ndarray, float | None], ...]:
        """The chunk finished since the last tick, if any: ((request, chunk, latency in ms or None),) or ()."""
        raise NotImplementedError

    def _arrived_now(self, tick: int) -> tuple[tuple[Request, np.ndarray, float | None], ...]:
        """A chunk already due in the tick it was planned in (only the virtual clock's D = 0 has one)."""
        return ()

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        context = self.policy.observe(observation)
        latency, dropped, jump = None, 0, None
        for request, chunk, ms in self._arrived(tick):
            arrival = self.schedule.arrive(request, chunk, tick)
            dropped, jump, latency = arrival.dropped, arrival.seam_jump, ms
        if not self._in_flight and self.schedule.due(tick):
            self._in_flight = True
            request = self.schedule.request(tick)
            if request.goal is not None:  # "forecast": plan from where the arm will be at row 0's tick
                state = request.goal if request.reference is None else (
                    np.asarray(observation[self.state_key], np.float32) + request.goal - request.reference)
                context = self.policy.observe({**observation, self.state_key: state})
            self._submit(request, context)
            for request, chunk, ms in self._arrived_now(tick):  # virtual D = 0: merged in the tick it was planned
                arrival = self.schedule.arrive(request, chunk, tick)
                dropped, jump, latency = dropped + arrival.dropped, arrival.seam_jump or jump, ms
        action, stale = self.schedule.pop(tick)
        return StepResult(action, self.schedule.depth_from(tick + 1), latency, dropped + stale,
                          out_of_distribution=self.policy.out_of_distribution, seam_jump=jump)

    def close(self) -> None:
        pass


def _forecast_state(planner: Planner) -> str:
    """The state input a "forecast" moves by the committed goals' motion: it must be the action's own quantity (a
    position-controlled arm whose action is the next goal position), so its shape must be the action's."""
    inputs = getattr(getattr(planner, "package", None), "manifest", None)
    states = [i for i in getattr(inputs, "inputs", ()) if i.kind == "state"]
    if len(states) != 1 or list(states[0].shape) != [planner.action_dim]:
        found = ", ".join(f"{i.name} {list(i.shape)}" for i in states) or "none"
        raise OptionError(f"merge rule 'forecast' moves the observed state by the committed goals, so it needs one "
                          f"state input shaped like the action ([{planner.action_dim}]); this policy's state "
                          f"inputs: {found}")
    return states[0].name


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class VirtualExecutor(_ChunkExecutor):
    """Execution on a virtual clock: a chunk planned from tick t's observation is merged before tick t + D's pop."""

    def __init__(self, planner: Planner, delay_ticks: int, merge: str = "latest", ensemble_coeff: float = 0.01,
                 notify: Callable[[str], None] | None = None):
        if isinstance(delay_ticks, bool) or not isinstance(delay_ticks, int) or delay_ticks < 0:
            raise OptionError(f"delay_ticks must be an integer >= 0, got {delay_ticks!r}")
        super().__init__(planner, merge, DelayEstimate(delay_ticks), ensemble_coeff, notify)
        self.delay_ticks = delay_ticks
        self._pending: tuple[int, Request, np.ndarray] | None = None

    def reset(self) -> None:
        super().reset()
        self._pending, self._in_flight = None, False

    def _submit(self, request: Request, context: Any) -> None:
        chunk = self.policy.plan(context, request.committed, request.delay)
        self._pending = (request.tick + self.delay_ticks, request, chunk)

    def _arrived(self, tick: int) -> tuple[tuple[Request, np.ndarray, float | None], ...]:
        if self._pending is None or self._pending[0] > tick:
            return ()
        _, request, chunk = self._pending
        self._pending, self._in_flight = None, False
        return ((request, chunk, None),)

    _arrived_now = _arrived


class AsyncExecutor(_ChunkExecutor):
    """Inference on a worker thread (wall clock); the control tick only merges finished chunks and pops an action.

    `period_s`: the tick period D_est is measured in (None: D_est stays `delay_ticks`); `delay_ticks`: D_est
    until a warm chunk latency is known (edge run measures it before torque-on)."""

    def __init__(self, planner: Planner, merge: str = "latest", period_s: float | None = None, delay_ticks: int = 1,
                 ensemble_coeff: float = 0.01, notify: Callable[[str], None] | None = None):
        super().__init__(planner, merge, DelayEstimate(delay_ticks, period_s), ensemble_coeff, notify)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._job: tuple[int, Request, Any] | None = None
        self._done: tuple[int, Request, np.ndarray, float] | None = None
        self._epoch = 0  # reset() count: a chunk planned before the last reset is discarded
        self._error: BaseException | None = None
        self._stop = False
        self._thread = threading.Thread(target=self._worker, name="inference", daemon=True)
        self._thread.start()

    def reset(self) -> None:
        with self._lock:
            super().reset()
            self._epoch += 1
            self._done = None
            self._in_flight = not self._idle.is_set()  # a chunk still computing blocks the next until it ends

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
            epoch, request, context = job
            t0 = time.perf_counter()
            try:
                chunk = self.policy.plan(context, request.committed, request.delay)
            except PolicyOutputError as exc:  # name the tick the chunk was planned at
                with self._lock:
                    self._error = PolicyOutputError(f"chunk planned at tick {request.tick}: {exc}")
                self._idle.set()
                continue
            except BaseException as exc:  # surfaced to the control loop on its next tick
                with self._lock:
                    self._error = exc
                self._idle.set()
                continue
            with self._lock:
                self._done = (epoch, request, chunk, (time.perf_counter() - t0) * 1e3)
            self._idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no chunk is being computed (tests pin arrival ticks with it); False on timeout."""
        return self._idle.wait(timeout)

    def _submit(self, request: Request, context: Any) -> None:
        with self._lock:
            self._job = (self._epoch, request, context)
            self._idle.clear()
        self._wake.set()

    def _arrived(self, tick: int) -> tuple[tuple[Request, np.ndarray, float | None], ...]:
        with self._lock:
            if self._error is not None:
                error, self._error, self._in_flight = self._error, None, False
                raise error
            done, self._done = self._done, None
            if done is None:
                return ()
        epoch, request, chunk, ms = done
        self._in_flight = False
        if epoch != self._epoch:
            return ()
        self.schedule.delay.add(ms / 1e3)
        return ((request, chunk, ms),)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
