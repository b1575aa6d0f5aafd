"""TensorRT backend: runs engines built for this device by `edge build` (trt_builder.py); never builds.

Each graph becomes an `EngineSession` (trt_session.py) holding its device memory until `close()`; the
backend tracks the sessions it made, and its own `close()` closes those still open, then releases the TensorRT
runtime and the CUDA adapter. One trt.Logger serves every builder, parser and runtime of the process: TensorRT
10 requires the logger to outlive everything made with it.
Engines are chosen per package under the precision rule in engine_cache.py. Written to NVIDIA's
TensorRT 10.x/11.x Python API, checked against the real binding wheels on CPU (tests/trt_backend);
running it needs a GPU (tests/gpu). See docs/tensorrt.md for what ran where.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

from edge.errors import BackendError
from edge.runtime.backends.base import Backend, GraphSession, check_io, release_all
from edge.runtime.backends.cuda_memory import INSTALL_HINT, CudaMemory, GpuInfo, cuda_memory
from edge.runtime.backends.engine_cache import (
    PRECISIONS,
    EngineStatus,
    cache_root,
    check_engine,
    check_version,
    engine_key,
)
from edge.runtime.backends.trt_session import EngineSession
from edge.runtime.package import PolicyPackage

TENSORRT_HINT = ("on a Jetson use JetPack's TensorRT Python bindings (sudo apt install python3-libnvinfer), "
                 "elsewhere `pip install tensorrt` (wheels come from NVIDIA's index, pypi.nvidia.com)")


def import_tensorrt() -> ModuleType:
    """The tensorrt module (10.0 or later), or BackendError naming what to install."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError(f"TensorRT is not available ({exc}): {TENSORRT_HINT}; plus {INSTALL_HINT}") from None
    if not hasattr(tensorrt, "Builder"):  # e.g. a directory named tensorrt on sys.path (pytest adds tests/)
        where = list(getattr(tensorrt, "__path__", [])) or getattr(tensorrt, "__file__", "?")
        raise BackendError(f"the module named tensorrt at {where} is not TensorRT: {TENSORRT_HINT}")
    check_version(tensorrt.__version__)
    return tensorrt


@functools.lru_cache(maxsize=None)
def shared_logger(trt: ModuleType) -> object:
    """The process's one trt.Logger (warnings and errors) for this TensorRT module, kept alive for good."""
    return trt.Logger(trt.Logger.WARNING)


class TensorRTBackend(Backend):
    """Runs prebuilt engines. precision "auto" takes FP16 engines when all are fresh, else FP32 ones.

    `engine_dir` is the engine dir `edge build --engine-dir` wrote (default `$EDGE_ENGINE_DIR`, else
    `<package>/engines`); `cuda` names the CUDA bindings ("cuda-python" or "pycuda"; default: the first usable).
    """

    name = "tensorrt"

    def __init__(self, precision: str = "auto", engine_dir: str | Path | None = None, cuda: str | None = None):
        if precision not in ("auto", *PRECISIONS):
            raise BackendError(f"unknown precision {precision!r}; choose auto, fp32 or fp16")
        self._trt = import_tensorrt()
        self._memory: CudaMemory = cuda_memory(cuda)
        self.gpu: GpuInfo = self._memory.gpu()
        self.precision = precision
        self.engine_dir = engine_dir
        self._runtime = self._trt.Runtime(shared_logger(self._trt))
        self._sessions: list[EngineSession] = []  # every session made, closed by close() if still open
        self._chosen: dict[Path, tuple[str, dict[str, EngineStatus]]] = {}  # package -> precision, engines

    @property
    def version(self) -> str:
        return self._trt.__version__

    def describe(self) -> str:
        used = ", ".join(sorted({precision for precision, _ in self._chosen.values()})) or self.precision
        return (f"tensorrt {self.version} on {self.gpu.name} (sm {self.gpu.compute_capability}), {used} engines, "
                f"CUDA via {self._memory.library}")

    def statuses(self, package: PolicyPackage, precision: str) -> dict[str, EngineStatus]:
        """Engine status of every graph of `package` for this device and `precision`."""
        root = cache_root(package, self.engine_dir)
        return {g: check_engine(root, engine_key(package, g, precision, self.version, self.gpu), g)
                for g in package.manifest.graphs}

    def precision_for(self, package: PolicyPackage) -> str:
        """The precision whose engines are all fresh (FP16 first under "auto"); BackendError saying what to build."""
        if package.path in self._chosen:
            return self._chosen[package.path][0]
        reasons = []
        for precision in (("fp16", "fp32") if self.precision == "auto" else (self.precision,)):
            try:
                statuses = self.statuses(package, precision)
            except BackendError as exc:
                reasons.append(str(exc))
                continue
            bad = [s for s in statuses.values() if s.state != "fresh"]
            if not bad:
                self._chosen[package.path] = precision, statuses
                return precision
            reasons += [s.reason for s in bad]
        flag = " --fp16" if self.precision != "fp32" else ""
        raise BackendError(f"no usable TensorRT engines for {package.path}: {'; '.join(reasons)}. Build them on this "
                           f"device with `edge build {package.path}{flag}` (add --rebuild to replace stale ones)")

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        if self._runtime is None:
            raise BackendError("the TensorRT backend is closed")
        self.precision_for(package)
        status = self._chosen[package.path][1][graph]  # checked once per package, not per graph
        with self._memory.activate():
            engine = self._runtime.deserialize_cuda_engine(status.path.read_bytes())
        if engine is None:
            raise BackendError(f"graph {graph!r}: TensorRT could not deserialize {status.path}; "
                               f"rebuild it with `edge build {package.path} --rebuild`")
        session = EngineSession(graph, package.manifest.graphs[graph], self._trt, engine, self._memory)
        try:
            check_io(graph, session.spec, {n: list(session.shapes[n]) for n in session.input_names},
                     {n: list(session.shapes[n]) for n in session.output_names})
        except BaseException:
            session.close()
            raise
        self._sessions = [s for s in self._sessions if not s.closed] + [session]
        return session

    def close(self) -> None:
        """Close the sessions it made that are still open, then release the TensorRT runtime and the CUDA adapter,
        each even if the one before failed. Idempotent."""
        if self._runtime is None:
            return
        sessions, self._sessions = self._sessions, []

        def drop_runtime() -> None:
            try:
                with self._memory.activate():
                    self._runtime = None
            finally:
                self._runtime = None

        release_all([s.close for s in sessions] + [drop_runtime, self._memory.close])
