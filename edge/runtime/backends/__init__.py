"""Backend selection: `get_backend("auto" | "onnxruntime" | "tensorrt")`.

"auto" picks, per package, the best that works on this machine: TensorRT engines already built for
this device (`edge build`) -> ONNX Runtime's TensorRT EP -> its CUDA EP -> its CPU EP, and logs one line
saying which and why the better ones were skipped (also in `describe()`). It never builds engines, and it
initialises CUDA only when engines for the installed TensorRT are on disk: a machine without them never
loads a CUDA library or creates a TensorRT runtime. If the TensorRT engines fail to load in any way (deserialize,
execution context, I/O that does not match the manifest or that numpy cannot hold, a CUDA binding's own error),
the sessions already loaded and the TensorRT backend are closed and the whole package falls back to ONNX Runtime
with a logged warning saying why.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from edge.errors import BackendError, EdgeError
from edge.runtime.backends.base import Backend, GraphSession, release_all
from edge.runtime.backends.engine_cache import cache_root, candidate_versions
from edge.runtime.package import PolicyPackage

BACKENDS = ("auto", "onnxruntime", "tensorrt")
log = logging.getLogger("edge.runtime.backends")


def select_backend(package: PolicyPackage, engine_dir: str | Path | None = None) -> tuple[Backend, list[str]]:
    """The best backend for `package` here, and why each better one was skipped."""
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend

    skipped = []
    root = cache_root(package, engine_dir)
    versions = candidate_versions(root, list(package.manifest.graphs))
    if not versions:
        skipped.append(f"tensorrt: no engines in {root} for every graph (build them on the device with "
                       f"`edge build {package.path}`)")
    else:
        from edge.runtime.backends.tensorrt import TensorRTBackend, import_tensorrt
        try:
            version = import_tensorrt().__version__  # loads TensorRT's library; CUDA is not initialised yet
            if version not in versions:
                raise BackendError(f"the engines in {root} were built with TensorRT {', '.join(sorted(versions))}, "
                                   f"this is TensorRT {version}; rebuild them with `edge build {package.path}`")
            backend = TensorRTBackend(engine_dir=engine_dir)
        except Exception as exc:  # BackendError, or a CUDA binding's own error while reading the device
            skipped.append(f"tensorrt: {_why(exc)}")
        else:
            try:
                backend.precision_for(package)  # raises unless every graph has a fresh engine for this device
                return backend, skipped
            except BackendError as exc:
                skipped.append(f"tensorrt: {exc}")
                backend.close()
    return OnnxRuntimeBackend(), skipped


def _why(exc: BaseException) -> str:
    """An error in words: ours as they are, others (TypeError, pycuda's, cuda-python's) with their type."""
    return str(exc) if isinstance(exc, EdgeError) else f"{type(exc).__name__}: {exc}"


class AutoBackend(Backend):
    """Defers the choice to the first `load` of each package (engines are per package).

    With TensorRT chosen, the first load deserializes every graph of the package, so a failure in any
    of them moves the whole package to ONNX Runtime instead of mixing backends.
    """

    name = "auto"

    def __init__(self, engine_dir: str | Path | None = None) -> None:
        self.engine_dir = engine_dir
        self.chosen: dict[Path, Backend] = {}
        self.skipped: dict[Path, list[str]] = {}
        self._loaded: dict[tuple[Path, str], GraphSession] = {}

    def _choose(self, package: PolicyPackage) -> None:
        backend, skipped = select_backend(package, self.engine_dir)
        if backend.name == "tensorrt":
            sessions: dict[str, GraphSession] = {}
            try:
                for graph in package.manifest.graphs:
                    sessions[graph] = backend.load(package, graph)
            except Exception as exc:  # PackageError from check_io, BackendError, a CUDA binding's own error
                why = _why(exc)
                try:
                    release_all([session.close for session in sessions.values()] + [backend.close])
                except Exception as close_exc:  # reported, not raised: ONNX Runtime can still run the package
                    why += f"; closing what it had loaded failed too: {_why(close_exc)}"
                log.warning("backend auto: TensorRT engines for %s did not load (%s); closed the TensorRT backend, "
                            "using ONNX Runtime", package.path, why)
                from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
                backend, skipped = OnnxRuntimeBackend(), [*skipped, f"tensorrt: {why}"]
            else:
                self._loaded.update({(package.path, g): s for g, s in sessions.items()})
        self.chosen[package.path], self.skipped[package.path] = backend, skipped

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        first = package.path not in self.chosen
        if first:
            self._choose(package)
        session = self._loaded.pop((package.path, graph), None) or self.chosen[package.path].load(package, graph)
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

    def close(self) -> None:
        """Close the sessions loaded while choosing and never asked for, then the backends it chose."""
        loaded, self._loaded = self._loaded, {}
        for session in loaded.values():
            session.close()
        chosen, self.chosen = self.chosen, {}
        for backend in chosen.values():
            backend.close()


def get_backend(name: str = "auto", **options: Any) -> Backend:
    """Return a backend instance; "auto" picks the best one available on this machine per package.

    `options` go to the backend: OnnxRuntimeBackend(providers, threads, precision, spinning),
    TensorRTBackend(precision, engine_dir, cuda), AutoBackend(engine_dir).
    """
    if name == "auto":
        if set(options) - {"engine_dir"}:
            raise BackendError(f"backend 'auto' takes only engine_dir (got {sorted(options)}); name a backend to "
                               "pass other options")
        return AutoBackend(**options)
    if name == "onnxruntime":
        from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
        return OnnxRuntimeBackend(**options)
    if name == "tensorrt":
        from edge.runtime.backends.tensorrt import TensorRTBackend
        return TensorRTBackend(**options)
    raise BackendError(f"unknown backend {name!r}; choose one of {BACKENDS}")


__all__ = ["Backend", "GraphSession", "get_backend", "select_backend", "AutoBackend", "BACKENDS"]
