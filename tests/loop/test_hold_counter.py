"""The holding count of `edge run --server` (HoldCounter): from the first tick, and not hidden by interpolation."""

from __future__ import annotations

from edge.robot.executors import VirtualExecutor
from edge.robot.interpolation import PolicyRate
from edge.robot.remote import HoldCounter
from tests.loop.test_delay import Rows


def test_holds_count_every_policy_tick_without_a_chunk_from_the_first_even_under_interpolation():
    delay, policy_ticks = 6, 40  # the first chunk arrives D policy ticks after the first observation
    reference = VirtualExecutor(Rows(rows=10, n_action_steps=4), delay)
    reference.reset()
    empty = [t for t in range(policy_ticks) if reference.step({}, t).action is None]
    assert empty[:delay] == list(range(delay))  # the robot waits from tick 0, before any chunk arrived

    counter = HoldCounter(VirtualExecutor(Rows(rows=10, n_action_steps=4), delay))
    stack = PolicyRate(counter, servo_hz=30.0, policy_hz=10.0)  # as `edge run` stacks them when the policy is slower
    stack.reset()
    goals = [stack.step({}, tick).action for tick in range(3 * policy_ticks)]
    assert counter.ticks == policy_ticks
    assert counter.holds == len(empty)
    assert sum(g is not None for g in goals[3 * delay:]) == len(goals[3 * delay:])  # interpolation shows no gap
