"""Loop tests drive the real bus and safety layer against the pty emulator."""

from __future__ import annotations

import time

import numpy as np
import pytest

from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.package import PolicyPackage


class SlowSession(GraphSession):
    def __init__(self, inner: GraphSession, delay_s: float):
        super().__init__(inner.name, inner.spec)
        self.inner, self.delay_s = inner, delay_s

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        time.sleep(self.delay_s)
        return self.inner.run(feeds)


class SlowBackend(Backend):
    """ONNX Runtime with an added fixed delay per graph call: a device slower than the control period."""

    name = "slow-onnxruntime"

    def __init__(self, delay_s: float):
        self.inner, self.delay_s = OnnxRuntimeBackend(threads=1), delay_s

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        return SlowSession(self.inner.load(package, graph), self.delay_s)


@pytest.fixture
def slow_backend():
    return SlowBackend
