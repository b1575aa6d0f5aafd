"""Backend selection: `get_backend("auto" | "onnxruntime" | "tensorrt")`.

"auto" picks, per package, the best that works on this machine: TensorRT engines already built for
this device (`edge build`) → ONNX Runtime's TensorRT EP → its CUDA EP → its CPU EP, and logs one line
saying which and why the better ones were skipped (also in `describe()`). It never builds engines.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.backends.base import Backend, GraphSession
from edge.errors import BackendError
from edge.package import PolicyPackage

BACKENDS = ("auto", "onnxruntime", "tensorrt")
log = logging.getLogger("edge.backends")


def select_backend(package: PolicyPackage) -> tuple[Backend, list[str]]:
    """The best backend for `package` here, and why each better one was skipped."""
    from edge.backends.onnxruntime import OnnxRuntimeBackend
    from edge.backends.tensorrt import TensorRTBackend

    skipped = []
    try:
        backend = TensorRTBackend()
        backend.precision_for(package)  # raises unless every graph has a fresh engine for this device
        return backend, skipped
    except BackendError as exc:
        skipped.append(f"tensorrt: {exc}")
    return OnnxRuntimeBackend(), skipped


class AutoBackend(Backend):
    """Defers the choice to the first `load` of each package (engines are per package)."""

    name = "auto"

    def __init__(self) -> None:
        self.chosen: dict[Path, Backend] = {}
        self.skipped: dict[Path, list[str]] = {}

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        first = package.path not in self.chosen
        if first:
            self.chosen[package.path], self.skipped[package.path] = select_backend(package)
        session = self.chosen[package.path].load(package, graph)
        if first:  # after the first load, when the backend knows its providers and precision
            log.info("backend auto -> %s%s", self.chosen[package.path].describe(),
                     "".join(f" [skipped {s}]" for s in self.skipped[package.path]))
        return session

    def precision_for(self, package: PolicyPackage) -> str:
        chosen = self.chosen.get(package.path)
        return chosen.precision_for(package) if chosen is not None else "fp32"

    def describe(self) -> str:
        if not self.chosen:
            return "auto (chooses when a package is loaded)"
        return "; ".join(f"auto -> {b.describe()}" for b in self.chosen.values())


def get_backend(name: str = "auto", **options: Any) -> Backend:
    """Return a backend instance; "auto" picks the best one available on this machine per package.

    `options` go to the backend: OnnxRuntimeBackend(providers, threads, precision),
    TensorRTBackend(precision, cache_dir).
    """
    if name == "auto":
        if options:
            raise BackendError(f"backend 'auto' takes no options (got {sorted(options)}); name a backend to pass them")
        return AutoBackend()
    if name == "onnxruntime":
        from edge.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(**options)
    if name == "tensorrt":
        from edge.backends.tensorrt import TensorRTBackend
        return TensorRTBackend(**options)
    raise BackendError(f"unknown backend {name!r}; choose one of {BACKENDS}")


__all__ = ["Backend", "GraphSession", "get_backend", "select_backend", "AutoBackend", "BACKENDS"]
