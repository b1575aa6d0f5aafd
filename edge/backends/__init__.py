"""Backend selection: `get_backend("auto" | "onnxruntime" | "tensorrt")`."""

from __future__ import annotations

from edge.backends.base import Backend, GraphSession
from edge.errors import BackendError

BACKENDS = ("auto", "onnxruntime")


def get_backend(name: str = "auto") -> Backend:
    """Return a backend instance; "auto" picks the best one available on this machine."""
    if name in ("auto", "onnxruntime"):
        from edge.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend()
    raise BackendError(f"unknown backend {name!r}; choose one of {BACKENDS}")


__all__ = ["Backend", "GraphSession", "get_backend", "BACKENDS"]
