"""The backend interface: load one graph of a package, run it on named numpy arrays.

Backends are interchangeable behind this interface (ONNX Runtime now, TensorRT on the device);
a policy runner never knows which one it talks to.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from edge.errors import PackageError
from edge.runtime.package import GraphSpec, PolicyPackage


class GraphSession(ABC):
    """One loaded graph. `run` takes and returns float32 arrays keyed by the manifest's tensor names."""

    def __init__(self, name: str, spec: GraphSpec):
        self.name = name
        self.spec = spec

    @abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ...

    def close(self) -> None:
        """Give back what the session holds (device memory for TensorRT); nothing to do by default."""

    def __enter__(self) -> "GraphSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend(ABC):
    """Creates GraphSessions for a package's graphs. The sessions belong to whoever asked for them (a runner);
    `close()` releases what the backend itself holds, after those sessions are closed."""

    name: str = "base"

    @abstractmethod
    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        ...

    def describe(self) -> str:
        """One line saying what this backend runs on (shown to the user)."""
        return self.name

    def precision_for(self, package: PolicyPackage) -> str:
        """"fp32" or "fp16": what this backend runs `package` in (decides which tolerance a self-check uses)."""
        return "fp32"

    def close(self) -> None:
        """Release what the backend holds (TensorRT's runtime, the CUDA adapter); nothing by default. Idempotent."""


def check_io(graph: str, spec: GraphSpec, actual_inputs: dict[str, list], actual_outputs: dict[str, list]) -> None:
    """Compare a graph file's real I/O names and shapes with the manifest's; PackageError on mismatch."""
    for kind, declared, actual in (("input", spec.inputs, actual_inputs), ("output", spec.outputs, actual_outputs)):
        names = [t.name for t in declared]
        if sorted(names) != sorted(actual):
            raise PackageError(f"graph {graph!r}: manifest {kind}s {names} do not match the ONNX file's {list(actual)}")
        for t in declared:
            if list(actual[t.name]) != list(t.shape):
                raise PackageError(f"graph {graph!r}: {kind} {t.name!r} has shape {list(actual[t.name])} in the "
                                   f"ONNX file but {t.shape} in the manifest")


def release_all(steps: list[Callable[[], None]]) -> None:
    """Run every step, each in its own try/finally: one failing still runs the rest (its error propagates)."""
    if steps:
        try:
            steps[0]()
        finally:
            release_all(steps[1:])
