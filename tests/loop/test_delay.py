"""Delay-aware execution on virtual clocks: the schedule, both drivers agreeing, the policy's own rate."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.errors import OptionError
from edge.robot.chunks import ChunkSchedule, DelayEstimate, ticks_for
from edge.robot.executors import AsyncExecutor, StepResult, SyncExecutor, VirtualExecutor
from edge.robot.interpolation import PolicyRate
from edge.runtime.package import Chunking
from edge.sim import ReachEnv, sample_scene
from edge.sim.reach import joints_for
from edge.runtime.guidance import RTCOptions

DATA = Path(edge.__file__).parent / "data"


def observations(n: int) -> list[dict[str, np.ndarray]]:
    """A reach-task observation per tick with the arm moving (so each chunk differs), camera frame included."""
    env = ReachEnv()
    env.reset(sample_scene(np.random.default_rng(4)))
    out = []
    for t in range(n):
        out.append(env.observation(with_image=True))
        env.step(joints_for(np.array([t * 0.8, -70 + t * 3.0])))
    return out


class Rows:
    """A planner returning chunk t0 + row / 100 for an observation of tick t0: which rows ran is visible."""

    policy_type = "act"
    action_dim = 1
    out_of_distribution: dict = {}

    def __init__(self, rows: int, n_action_steps: int):
        self.chunking = Chunking(rows, n_action_steps)
        self.tick = -1
        self.calls: list[tuple[int, int, int]] = []  # (observation tick, committed rows, delay)

    def reset(self) -> None:
        self.tick = -1

    def observe(self, observation):  # noqa: ANN001, ANN201
        self.tick += 1
        return self.tick

    def plan(self, context, committed, delay):  # noqa: ANN001, ANN201
        self.calls.append((context, len(committed), delay))
        return (context + np.arange(self.chunking.chunk_size) / 100)[:, None].astype(np.float32)


def run_virtual(planner: Rows, delay: int, ticks: int, notes: list | None = None) -> list[StepResult]:
    ex = VirtualExecutor(planner, delay, notify=(notes.append if notes is not None else None))
    ex.reset()
    return [ex.step({}, t) for t in range(ticks)]


def test_d0_keeps_lerobots_cadence_and_the_first_chunk_from_standstill_skips_nothing():
    planner = Rows(rows=10, n_action_steps=4)
    got = [r.action[0] for r in run_virtual(planner, 0, 12)]
    assert got == pytest.approx([0, .01, .02, .03, 4, 4.01, 4.02, 4.03, 8, 8.01, 8.02, 8.03])
    planner = Rows(rows=10, n_action_steps=4)
    steps = run_virtual(planner, 5, 8)
    assert [s.action for s in steps[:5]] == [None] * 5  # holding until the first chunk arrives
    assert steps[5].action[0] == pytest.approx(0.0) and steps[5].dropped == 0  # row 0, nothing skipped


def test_next_chunk_starts_when_max_of_p_minus_n_and_d_remain():
    planner = Rows(rows=10, n_action_steps=8)  # P - n_action_steps = 2 < D = 3: D decides
    steps = run_virtual(planner, 3, 30)
    ticks = [c[0] for c in planner.calls]
    assert ticks[:3] == [0, 10, 17]  # first chunk at 3..12; 3 left at tick 10; next covers 13.. from tick 17
    executed = [s for s in steps[3:] if s.action is None]
    assert not executed  # continuous coverage once started (2*D <= P)
    assert planner.calls[1][1:] == (3, 3)  # committed: ticks 10..12 (3 rows), the first 3 frozen


def test_beyond_half_the_plan_it_says_so_once_and_never_freezes():
    planner = Rows(rows=5, n_action_steps=5)  # VQ-BeT's sizes
    notes: list[str] = []
    steps = run_virtual(planner, 8, 80, notes)
    assert len(notes) == 1 and "2*D <= 5" in notes[0] and "--hz" in notes[0]
    executed = [s.action[0] for s in steps if s.action is not None]
    assert len(executed) >= 25  # every chunk executes, from its first row at its arrival tick
    rows = sorted({round(float(a) % 1, 2) for a in executed})
    assert rows == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])  # all five rows of every chunk


def test_delay_estimate_uses_p95_of_warm_latencies():
    est = DelayEstimate(2, period_s=0.05)
    assert est.ticks == 2
    est.add(5.0)  # the cold first chunk is left out
    assert est.ticks == 2
    for latency in [0.06] * 19 + [0.14]:
        est.add(latency)
    assert est.ticks == ticks_for(float(np.percentile([0.06] * 19 + [0.14], 95)), 0.05) == 3


def test_seam_jump_is_the_change_at_the_merge_tick():
    schedule = ChunkSchedule(1, 2, "latest", DelayEstimate(0))
    first = schedule.request(0)
    assert schedule.arrive(first, np.zeros((4, 1)), 0).seam_jump is None  # nothing executed before: no seam
    schedule.pop(0), schedule.pop(1)
    second = schedule.request(2)
    assert schedule.arrive(second, np.full((4, 1), 2.5), 2).seam_jump == pytest.approx(2.5)


@pytest.mark.parametrize("family,merge", [("act", "weighted"), ("act", "forecast"), ("diffusion", "rtc")])
def test_virtual_and_threaded_drivers_give_identical_actions(family, merge):
    """The same arrival ticks (D = 3): the worker thread is held until the tick the virtual clock merges at."""
    delay, ticks, obs = 3, 40, observations(40)
    options = {"seed": 3, "rtc": RTCOptions()} if family == "diffusion" else {}
    virtual_policy = edge.load_policy(DATA / f"demo_{family}", **options)
    threaded_policy = edge.load_policy(DATA / f"demo_{family}", **options)
    virtual = VirtualExecutor(virtual_policy, delay, merge)
    virtual.reset()
    expected = [virtual.step(obs[t], t).action for t in range(ticks)]

    gate = threading.Event()
    inner_plan = threaded_policy.plan

    def held_plan(context, committed, d):  # noqa: ANN001, ANN202
        gate.wait(30)
        return inner_plan(context, committed, d)

    threaded_policy.plan = held_plan
    threaded = AsyncExecutor(threaded_policy, merge, delay_ticks=delay)
    try:
        threaded.reset()
        got, requested = [], None
        for t in range(ticks):
            if requested is not None and t == requested + delay:
                gate.set()
                assert threaded.wait_idle(30)
                gate.clear()
                requested = None
            was = threaded._in_flight
            got.append(threaded.step(obs[t], t).action)
            if threaded._in_flight and not was:
                requested = t
    finally:
        gate.set()
        threaded.close()
    assert sum(a is not None for a in expected) > 30
    for t, (a, b) in enumerate(zip(expected, got)):
        assert (a is None) == (b is None), t
        if a is not None:
            np.testing.assert_array_equal(a, b, err_msg=f"tick {t}")


@pytest.mark.parametrize("family", ["act", "diffusion", "vqbet"])
def test_virtual_d0_is_synchronous_select_action(family):
    obs = observations(30)
    options = {} if family == "act" else {"seed": 5}
    a, b = edge.load_policy(DATA / f"demo_{family}", **options), edge.load_policy(DATA / f"demo_{family}", **options)
    virtual, sync = VirtualExecutor(a, 0), SyncExecutor(b)
    virtual.reset(), sync.reset()
    for t in range(30):
        np.testing.assert_array_equal(virtual.step(obs[t], t).action, sync.step(obs[t], t).action, err_msg=str(t))


def reach_actions(executor, ticks: int) -> list:  # noqa: ANN001
    """The actions an executor gives over one closed-loop reach episode (the arm holds until the first)."""
    env = ReachEnv()
    env.reset(sample_scene(np.random.default_rng(11)))
    executor.reset()
    goal, actions = env.joints.astype(np.float32), []
    for t in range(ticks):
        action = executor.step(env.observation(), t).action
        actions.append(action)
        goal = goal if action is None else action
        env.step(goal)
    return actions


@pytest.mark.parametrize("delay", [3, 6, 10])
def test_forecast_on_an_arm_that_reaches_its_goals_is_synchronous_execution_delayed(delay):
    """The simulated arm reaches every goal of this policy within a tick, so the state forecast from the committed
    goals is exact: after the first D ticks of holding, the actions are select_action's, n_action_steps per chunk."""
    sync = reach_actions(SyncExecutor(edge.load_policy(DATA / "demo_act")), 30)
    delayed = reach_actions(VirtualExecutor(edge.load_policy(DATA / "demo_act"), delay, "forecast"), 30 + delay)
    assert delayed[:delay] == [None] * delay
    np.testing.assert_allclose(np.array(delayed[delay:]), np.array(sync), atol=1e-3)
    latest = reach_actions(VirtualExecutor(edge.load_policy(DATA / "demo_act"), delay, "latest"), 30 + delay)
    assert np.abs(np.array(latest[delay:]) - np.array(sync)).max() > 0.1  # what the forecast changes


def test_forecast_needs_a_state_shaped_like_the_action():
    with pytest.raises(OptionError, match="'forecast'.*state input shaped like the action"):
        VirtualExecutor(Rows(rows=10, n_action_steps=4), 2, "forecast")


def test_a_merge_rule_of_another_family_is_refused_naming_those_that_apply():
    with pytest.raises(OptionError, match="rtc does not apply to a act policy; its rules: latest, average"):
        VirtualExecutor(edge.load_policy(DATA / "demo_act"), 2, "rtc")


class Scripted:
    """An executor giving action k at policy tick k (None before tick 1)."""

    def __init__(self):
        self.ticks: list[int] = []

    def reset(self) -> None:
        self.ticks.clear()

    def step(self, observation, tick):  # noqa: ANN001, ANN201
        self.ticks.append(tick)
        return StepResult(None if tick == 0 else np.full(2, 10.0 * tick, np.float32), 0, None)


@pytest.mark.parametrize("servo_hz,policy_hz", [(100, 20), (50, 20), (20, 20)])
def test_interpolation_hits_each_policy_action_at_its_tick(servo_hz, policy_hz):
    inner = Scripted()
    rate = PolicyRate(inner, servo_hz, policy_hz)
    goals = [rate.step({}, n).action for n in range(servo_hz)]  # one second
    assert inner.ticks == list(range(policy_hz))  # the policy advanced at its own rate
    assert all(goals[n] is None for n in range(servo_hz) if rate.policy_tick(n) == 0)  # no action yet: hold
    for k in range(2, policy_hz):
        inside = [goals[n][0] for n in range(servo_hz) if rate.policy_tick(n) == k]
        assert inside[-1] == 10.0 * k  # a_k exactly, at the last servo tick of policy tick k
        assert inside == sorted(inside) and 10.0 * (k - 1) < inside[0] <= 10.0 * k  # by time, from a_(k-1)
    steps = np.diff([goals[n][0] for n in range(servo_hz) if rate.policy_tick(n) >= 2])
    assert steps.max() <= 10.0 * policy_hz / servo_hz * 1.5 + 1e-4  # spread over the servo ticks, no jumps


def test_a_servo_rate_below_the_policys_is_refused_naming_both():
    with pytest.raises(OptionError, match="10 Hz, below the policy's own rate of 20"):
        PolicyRate(Scripted(), 10, 20)
