"""Executors without a robot: async timing semantics and the merge rules, checked against hand-built chunks."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.robot.chunks import _Timeline
from edge.robot.executors import AsyncExecutor, SyncExecutor

DEMO = Path(edge.__file__).parent / "data" / "demo_act"
OBS = {"observation.state": np.zeros(6, np.float32), "observation.environment_state": np.zeros(4, np.float32)}


def chunk(value: float, n: int = 4, dim: int = 2) -> np.ndarray:
    return np.full((n, dim), value)


def test_latest_rule_replaces_the_overlap():
    tl = _Timeline(2)
    tl.merge(0, chunk(1.0), "latest", 0.0)
    tl.merge(2, chunk(5.0), "latest", 0.0)
    got = [tl.pop(t)[0][0] for t in range(6)]
    assert got == [1.0, 1.0, 5.0, 5.0, 5.0, 5.0]


def test_average_and_ensemble_weights():
    for rule, coeff, expected in (("average", 0.0, 3.0), ("ensemble", 0.5, (1 + 5 * np.exp(-0.5)) / (1 + np.exp(-0.5)))):
        tl = _Timeline(2)
        tl.merge(0, chunk(1.0), rule, coeff)
        tl.merge(2, chunk(5.0), rule, coeff)
        got = [tl.pop(t)[0][0] for t in range(6)]
        np.testing.assert_allclose(got, [1.0, 1.0, expected, expected, 5.0, 5.0])


def test_weighted_rule_cross_fades():
    tl = _Timeline(1)
    tl.merge(0, chunk(0.0, 6, 1), "weighted", 0.0)
    tl.merge(2, chunk(1.0, 6, 1), "weighted", 0.0)
    got = [tl.pop(t)[0][0] for t in range(8)]
    np.testing.assert_allclose(got, [0, 0, 0.2, 0.4, 0.6, 0.8, 1, 1])


def test_stale_actions_are_dropped():
    tl = _Timeline(1)
    tl.merge(0, chunk(1.0, 4, 1), "latest", 0.0)
    assert tl.pop(3) == (pytest.approx(np.array([1.0])), 3)  # ticks 0..2 passed unexecuted
    assert tl.merge(1, np.arange(6.0)[:, None], "latest", 0.0) == 3  # rows for ticks 1..3 are stale
    assert tl.pop(4)[0][0] == 3.0


def test_async_step_never_waits_and_the_first_chunk_from_standstill_skips_nothing(slow_backend):
    slow = edge.runtime.policies.runner_class("act")(edge.load_policy(DEMO).package, slow_backend(0.2))
    executor = AsyncExecutor(slow)
    try:
        first = executor.step(OBS, 0)
        assert first.action is None and first.queue_depth == 0  # the chunk is still being computed: hold
        assert executor.wait_idle(10)
        second = executor.step(OBS, 10)  # 10 ticks passed while the chunk planned at tick 0 was computed
        assert second.action is not None and second.inference_ms >= 200
        assert second.dropped == 0  # from standstill nothing is stale: the arm starts at the chunk's first row
        np.testing.assert_allclose(second.action, slow.predict_action_chunk(OBS)[0], atol=1e-6)
    finally:
        executor.close()


def test_sync_executor_is_lerobot_select_action():
    a, b = edge.load_policy(DEMO), edge.load_policy(DEMO)
    ex = SyncExecutor(a)
    ex.reset()
    b.reset()
    for t in range(12):
        np.testing.assert_array_equal(ex.step(OBS, t).action, b.select_action(OBS))
