"""Who closes what: a runner closes its graph sessions, and its backend only when edge.load_policy made it.

Real ONNX Runtime sessions on the bundled demo packages.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import edge
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.package import load_package
from edge.runtime.policies import runner_class

DATA = Path(edge.__file__).parent / "data"
FAMILIES = ["act", "diffusion", "vqbet"]


class CountingBackend(OnnxRuntimeBackend):
    """ONNX Runtime on the CPU, counting close() calls and the sessions it gave out; `fail` names a graph it refuses."""

    def __init__(self, fail: str | None = None) -> None:
        super().__init__(["CPUExecutionProvider"])
        self.fail, self.closes, self.sessions = fail, 0, []

    def load(self, package, graph):  # noqa: ANN001, ANN201
        if graph == self.fail:
            raise edge.BackendError(f"refusing {graph}")
        self.sessions.append(super().load(package, graph))
        return self.sessions[-1]

    def close(self) -> None:
        self.closes += 1


def observation(path: Path) -> dict[str, np.ndarray]:
    return {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32)
            for i in load_package(path).manifest.inputs}


def closed(session) -> bool:  # noqa: ANN001
    with pytest.raises(edge.BackendError, match="session is closed"):
        session.run({})
    return True


@pytest.mark.parametrize("family", FAMILIES)
def test_with_load_policy_closes_sessions_and_backend(family, monkeypatch):
    made = []
    monkeypatch.setattr(edge, "get_backend", lambda *a, **k: made.append(CountingBackend()) or made[-1])
    path = DATA / f"demo_{family}"
    obs = observation(path)
    with edge.load_policy(path, backend="onnxruntime") as policy:
        assert policy.owns_backend
        policy.select_action(obs)
    assert policy.closed and made[0].closes == 1
    assert all(closed(s) for s in policy.graphs.values())
    policy.close()  # twice: harmless, the backend is not closed again
    assert made[0].closes == 1
    for call in (policy.select_action, policy.predict_action_chunk, policy.observe):
        with pytest.raises(edge.BackendError, match=f"the {family} policy is closed"):
            call(obs)


def test_select_action_after_close_refuses_even_with_queued_actions():
    path = DATA / "demo_act"
    obs = observation(path)
    policy = edge.load_policy(path, backend="onnxruntime")
    policy.select_action(obs)
    assert policy.queued_actions > 0
    policy.close()
    with pytest.raises(edge.BackendError, match="closed"):
        policy.select_action(obs)
    with pytest.raises(edge.BackendError, match="closed"):
        policy.plan(policy.observation_processor.check(obs))


def test_a_backend_passed_in_stays_the_callers():
    package = load_package(DATA / "demo_vqbet")
    backend = CountingBackend()
    with runner_class("vqbet")(package, backend) as policy:
        assert not policy.owns_backend
        policy.select_action(observation(package.path))
    assert backend.closes == 0 and all(closed(s) for s in backend.sessions)
    with runner_class("vqbet")(package, backend) as again:  # the backend still loads
        again.select_action(observation(package.path))


def test_a_graph_that_fails_to_load_closes_the_ones_loaded_before_it():
    package = load_package(DATA / "demo_vqbet")
    backend = CountingBackend(fail="policy")
    with pytest.raises(edge.BackendError, match="refusing policy"):
        runner_class("vqbet")(package, backend)
    assert backend.sessions and all(closed(s) for s in backend.sessions)


def test_load_policy_closes_the_backend_it_made_when_the_runner_is_refused(monkeypatch):
    made = []
    monkeypatch.setattr(edge, "get_backend", lambda *a, **k: made.append(CountingBackend(fail="decode")) or made[-1])
    with pytest.raises(edge.BackendError, match="refusing decode"):
        edge.load_policy(DATA / "demo_vqbet", backend="onnxruntime")
    assert made[0].closes == 1 and all(closed(s) for s in made[0].sessions)


def test_auto_backend_closes_what_it_chose():
    package = load_package(DATA / "demo_act")
    with edge.load_policy(package.path, backend="auto") as policy:
        chosen = list(policy.backend.chosen.values())
        assert chosen
    assert policy.backend.chosen == {}
