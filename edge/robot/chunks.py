"""The clock-free core of chunked execution: the merged timeline, when to plan the next chunk, where it lands.

Both drivers in edge/robot/executors.py run this exact code: the worker thread on the robot (wall clock) and the
virtual clock of `edge eval --delay-ticks D`. Words as in docs/robot_loop.md: D is the number of ticks from a
chunk's observation tick to the tick it is merged at (before that tick's pop); P the rows `plan` returns; a
**seam** a merge that changes the action of its merge tick, its **jump** max_j |a_new(t) - a_before(t)|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from edge.errors import OptionError

MERGE_RULES = ("latest", "average", "weighted", "ensemble")  # what every planner takes
GUIDED_RULES = {"diffusion": ("rtc",)}  # rules that also steer the sampler (policy type -> names)
FORECAST_RULES = {"act": ("forecast",)}  # rules that plan from the state forecast for the merge tick (no history)
FAMILY_RULES = {family: GUIDED_RULES.get(family, ()) + FORECAST_RULES.get(family, ())
                for family in {**GUIDED_RULES, **FORECAST_RULES}}
ALL_MERGE_RULES = MERGE_RULES + tuple(r for rules in FAMILY_RULES.values() for r in rules)
LATENCY_WINDOW = 32  # recent chunk latencies D_est is estimated from (fixed memory)


def merge_rules(policy_type: str) -> tuple[str, ...]:
    """The --merge rules a family takes."""
    return MERGE_RULES + FAMILY_RULES.get(policy_type, ())


def check_merge_rule(policy_type: str, rule: str) -> None:
    """OptionError naming the rules that apply when `rule` is not one of a family's."""
    if rule not in merge_rules(policy_type):
        raise OptionError(f"--merge {rule} does not apply to a {policy_type} policy; its rules: "
                          f"{', '.join(merge_rules(policy_type))}")


class _Timeline:
    """Per-tick accumulators for merged actions: weighted sums, weight totals, prediction counts."""

    def __init__(self, dim: int):
        self.dim = dim
        self.start = 0  # tick of row 0
        self.sum = np.zeros((0, dim))
        self.weight = np.zeros(0)
        self.count = np.zeros(0, dtype=np.int64)

    def depth_from(self, tick: int) -> int:
        return max(0, self.start + len(self.weight) - tick)

    def value(self, tick: int) -> np.ndarray | None:
        """The merged action planned for `tick`, None if none is."""
        i = tick - self.start
        return self.sum[i] / self.weight[i] if 0 <= i < len(self.weight) else None

    def committed(self, tick: int) -> np.ndarray:
        """float32 (k, dim): the merged actions planned for `tick` on (what the timeline will execute)."""
        skip = max(0, tick - self.start)
        return (self.sum[skip:] / self.weight[skip:, None]).astype(np.float32)

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


class DelayEstimate:
    """D_est = ceil(p95(recent chunk latencies) / period) + 1, the cold first chunk excluded; `initial` until a
    warm latency is known. A fixed virtual delay (`period_s` None) is returned as is."""

    def __init__(self, initial: int, period_s: float | None = None):
        self.initial, self.period_s = int(initial), period_s
        self._latencies = np.zeros(LATENCY_WINDOW)
        self._seen = 0  # latencies recorded since the start, the cold one included
        self._latency: float | None = None  # p95 and D, computed when a latency arrives: read on every tick
        self._ticks = self.initial

    def add(self, latency_s: float) -> None:
        if self.period_s is None:
            return
        self._seen += 1
        if self._seen > 1:  # the first chunk pays for warm-up (allocation, caches)
            self._latencies[(self._seen - 2) % LATENCY_WINDOW] = latency_s
            self._latency = float(np.percentile(self._latencies[:min(self._seen - 1, LATENCY_WINDOW)], 95))
            self._ticks = ticks_for(self._latency, self.period_s)

    @property
    def latency_s(self) -> float | None:
        """p95 of the recent warm chunk latencies, None before one is known (or on a virtual clock)."""
        return self._latency

    @property
    def ticks(self) -> int:
        return self._ticks


def ticks_for(latency_s: float, period_s: float) -> int:
    """D for a chunk latency at a tick period: the tick it is merged at, counting the observation tick."""
    return math.ceil(latency_s / period_s - 1e-9) + 1


@dataclass
class Request:
    """A chunk being planned: observed at `tick`; `shifted` chunks execute from row 0 at their arrival tick.

    `goal` ("forecast" rule): the committed goal for tick `start` - 1. The chunk is planned from the observed state
    moved by goal - `reference` (the last executed goal; None before the first, when the arm holds where it was
    observed), where the committed goals take the arm by `start`, so its row 0 is for `start`."""

    tick: int
    committed: np.ndarray
    delay: int
    shifted: bool
    start: int | None = None
    goal: np.ndarray | None = None
    reference: np.ndarray | None = None


@dataclass
class Arrival:
    dropped: int  # stale rows of the chunk discarded
    seam_jump: float | None  # the jump at the merge tick if the merge changed its action, else None


def coverage_notice(delay: int, plan_rows: int, period_s: float | None, latency_s: float | None = None) -> str:
    """What is said once when one chunk in flight cannot cover the next (2·D > P)."""
    rate = f" at {1 / period_s:g} Hz" if period_s else ""
    rate += f" (chunks take {latency_s * 1e3:.0f} ms, p95)" if latency_s is not None else ""
    return (f"a chunk is merged {delay} ticks after its observation{rate}, but a chunk of {plan_rows} rows covers "
            f"the next one only while 2*D <= {plan_rows}: each chunk now executes from its first row when it arrives "
            f"and the arm holds between chunks; lower --hz or use a faster backend")


class ChunkSchedule:
    """When to plan, what is committed, and how an arriving chunk merges.

    The next chunk starts when at most max(P - n_action_steps, D_est) actions remain (D = 0 keeps LeRobot's cadence);
    with "forecast", when min(P, P - n_action_steps + D_est) remain, planned from the state forecast for the tick
    its row 0 executes at, so each chunk executes n_action_steps rows from its first, as synchronous execution
    does (D_est rows once D_est > n_action_steps). A chunk requested with nothing left to execute (standstill, or
    the queue ran dry) executes from its first row at its arrival tick; so does every chunk once 2·D_est > P (said
    once through `notify`).
    """

    def __init__(self, dim: int, n_action_steps: int, merge: str, delay: DelayEstimate, coeff: float = 0.01,
                 notify: Callable[[str], None] | None = None):
        self.dim, self.n_action_steps, self.coeff, self.delay = dim, n_action_steps, coeff, delay
        self.forecast = merge == "forecast"
        self.rule = "latest" if merge in ("rtc", "forecast") else merge  # guided and forecast rules merge as "latest"
        self.notify = notify
        self.plan_rows: int | None = None  # P, known from the first chunk
        self.noticed = False
        self.reset()

    def reset(self) -> None:
        self.timeline = _Timeline(self.dim)
        self.last: np.ndarray | None = None  # the last executed action (the held goal), None before the first

    def due(self, tick: int) -> bool:
        """Whether a chunk should be planned from this tick's observation (the caller knows none is in flight)."""
        d = self.delay.ticks
        if self.plan_rows is None:
            threshold = d
        elif self.forecast:
            threshold = min(self.plan_rows, self.plan_rows - self.n_action_steps + d)
        else:
            threshold = max(self.plan_rows - self.n_action_steps, d)
        return self.timeline.depth_from(tick) <= threshold

    def request(self, tick: int) -> Request:
        d = self.delay.ticks
        uncovered = self.plan_rows is not None and 2 * d > self.plan_rows
        if uncovered and not self.noticed:
            self.noticed = True
            if self.notify is not None:
                self.notify(coverage_notice(d, self.plan_rows, self.delay.period_s, self.delay.latency_s))
        if self.timeline.depth_from(tick) == 0 or uncovered:
            rest = self.timeline.committed(tick + d)
            if len(rest) == 0:  # the queue runs dry before arrival: the held goal is what is committed
                held = self.timeline.committed(tick)[-1:] if self.timeline.depth_from(tick) else self.last
                rest = np.zeros((0, self.dim), np.float32) if held is None else held.reshape(1, -1).astype(np.float32)
            return Request(tick, rest, 0, True)
        committed = self.timeline.committed(tick)
        delay = min(d, len(committed))
        if self.forecast and delay > 0:  # plan from where the committed goals take the arm
            return Request(tick, committed, delay, False, tick + delay, committed[delay - 1], self.last)
        return Request(tick, committed, delay, False)

    def arrive(self, request: Request, chunk: np.ndarray, tick: int) -> Arrival:
        """Merge `chunk` (planned for `request`) before `tick`'s pop."""
        if self.plan_rows is None:
            self.plan_rows = len(chunk)
        before = self.timeline.value(tick)
        if before is None:
            before = self.last
        t0 = tick if request.shifted else request.tick if request.start is None else request.start
        dropped = self.timeline.merge(t0, chunk, self.rule, self.coeff)
        after = self.timeline.value(tick)
        jump = None
        if before is not None and after is not None:
            change = float(np.max(np.abs(after - before)))
            jump = change if change > 0 else None
        return Arrival(dropped, jump)

    def pop(self, tick: int) -> tuple[np.ndarray | None, int]:
        action, dropped = self.timeline.pop(tick)
        if action is not None:
            self.last = action
        return action, dropped

    def depth_from(self, tick: int) -> int:
        return self.timeline.depth_from(tick)
