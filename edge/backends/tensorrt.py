"""TensorRT backend and engine builder (TensorRT 10.x Python API; JetPack 6 ships 10.3).

Sessions deserialize engines that `edge build` left beside the package (edge/backends/engine_cache.py)
and never build or rebuild on their own. I/O is by tensor name: `set_tensor_address` +
`execute_async_v3` on one stream, pinned host buffers, CUDA calls through edge/backends/cuda_memory.py.
FP16: the FP16 builder flag up to TensorRT 10.11; from 10.12 (flag deprecated, removed in 11) a
strongly typed network parsed from the FP16 ONNX written by `python -m export.fp16`.

Written to NVIDIA's documented API; UNVERIFIED here (no TensorRT, no GPU), see docs/tensorrt.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from edge.backends.base import Backend, GraphSession, check_io
from edge.backends.cuda_memory import INSTALL_HINT, CudaMemory, GpuInfo, cuda_memory
from edge.backends.engine_cache import (PRECISIONS, TIMING_CACHE, EngineKey, EngineStatus, cache_root, check_engine,
                                        engine_key, engine_source, strongly_typed, write_atomic, write_engine)
from edge.errors import BackendError
from edge.package import GraphSpec, PolicyPackage

TENSORRT_HINT = ("on a Jetson install JetPack's TensorRT Python bindings (sudo apt install python3-libnvinfer), "
                 "elsewhere `pip install tensorrt` (wheels come from NVIDIA's index, pypi.nvidia.com)")


def import_tensorrt() -> ModuleType:
    """The tensorrt module, or BackendError naming what to install."""
    try:
        import tensorrt
    except ImportError as exc:
        raise BackendError(f"TensorRT is not available ({exc}): {TENSORRT_HINT}; plus {INSTALL_HINT}") from None
    if not hasattr(tensorrt, "Builder"):  # e.g. a directory named tensorrt on sys.path (pytest adds tests/)
        where = list(getattr(tensorrt, "__path__", [])) or getattr(tensorrt, "__file__", "?")
        raise BackendError(f"the module named tensorrt at {where} is not TensorRT: {TENSORRT_HINT}")
    return tensorrt


@dataclass(frozen=True)
class DeviceBuffer:
    """A tensor's device memory: raw pointer, shape and dtype (what `bind` and `device_buffer` exchange)."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


class TensorRTSession(GraphSession):
    """One engine on one stream. `run` is host in, host out; `run_device` leaves tensors on the GPU.

    Device-resident use (e.g. a diffusion loop that keeps the sample and the conditioning on the GPU):
    `device_buffer(name)` exposes a tensor's device memory, `bind(name, ptr)` points a tensor at other
    device memory (another session's output, or a second buffer from `alloc_like` to ping-pong the
    sample), and `run_device(feeds, fetch)` copies only `feeds` in and only `fetch` out.
    """

    def __init__(self, name: str, spec: GraphSpec, trt: ModuleType, engine: Any, memory: CudaMemory):
        super().__init__(name, spec)
        self._engine = engine  # the context needs its engine alive
        self._memory = memory
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"graph {name!r}: TensorRT could not create an execution context (out of GPU memory?)")
        self._stream = memory.stream()
        self._handle = memory.stream_handle(self._stream)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        self._host: dict[str, np.ndarray] = {}
        self._own: dict[str, DeviceBuffer] = {}
        self._bound: dict[str, DeviceBuffer] = {}
        for n in names:
            shape = tuple(int(d) for d in engine.get_tensor_shape(n))
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            self._host[n] = memory.pinned(shape, dtype)
            self._own[n] = DeviceBuffer(memory.alloc(self._host[n].nbytes), shape, dtype)
            self._bound[n] = self._own[n]
            self._context.set_tensor_address(n, self._own[n].ptr)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_device(feeds, self.output_names)

    def run_device(self, feeds: Mapping[str, np.ndarray] | None = None, fetch: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Copy `feeds` to their device buffers, execute, copy back only `fetch`; other tensors stay on the GPU."""
        feeds = feeds or {}
        for n, value in feeds.items():
            host = self._host[n]
            np.copyto(host, np.asarray(value).reshape(host.shape), casting="same_kind")
            self._memory.htod(self._bound[n].ptr, host, self._stream)
        if not self._context.execute_async_v3(self._handle):
            raise BackendError(f"graph {self.name!r}: TensorRT execute_async_v3 failed")
        fetch = list(fetch)
        for n in fetch:
            self._memory.dtoh(self._host[n], self._bound[n].ptr, self._stream)
        self._memory.synchronize(self._stream)
        return {n: self._host[n].copy() for n in fetch}

    def device_buffer(self, name: str) -> DeviceBuffer:
        """The device memory tensor `name` currently reads from / writes to."""
        return self._bound[name]

    def alloc_like(self, name: str) -> DeviceBuffer:
        """A new device buffer shaped like tensor `name` (freed with the process); e.g. to ping-pong a sample."""
        own = self._own[name]
        return DeviceBuffer(self._memory.alloc(own.nbytes), own.shape, own.dtype)

    def bind(self, name: str, buffer: DeviceBuffer | None) -> None:
        """Point tensor `name` at `buffer` (same shape and dtype), or back at the session's own buffer with None."""
        own = self._own[name]
        buffer = buffer or own
        if buffer.shape != own.shape or np.dtype(buffer.dtype) != own.dtype:
            raise BackendError(f"graph {self.name!r}: cannot bind {name!r} {own.shape} {own.dtype} to a "
                               f"{buffer.shape} {buffer.dtype} buffer")
        self._bound[name] = buffer
        self._context.set_tensor_address(name, buffer.ptr)

    def copy_device(self, dst: DeviceBuffer, src: DeviceBuffer) -> None:
        """Device-to-device copy on this session's stream (ordered with its executions)."""
        self._memory.dtod(dst.ptr, src.ptr, min(dst.nbytes, src.nbytes), self._stream)


class TensorRTBackend(Backend):
    """Runs prebuilt engines. precision "auto" takes FP16 engines when all are fresh, else FP32 ones."""

    name = "tensorrt"

    def __init__(self, precision: str = "auto", cache_dir: str | Path | None = None):
        if precision not in ("auto", *PRECISIONS):
            raise BackendError(f"unknown precision {precision!r}; choose auto, fp32 or fp16")
        self._trt = import_tensorrt()
        self._memory = cuda_memory()
        self.gpu: GpuInfo = self._memory.gpu()
        self.precision = precision
        self.cache_dir = cache_dir
        self._runtime = self._trt.Runtime(self._trt.Logger(self._trt.Logger.WARNING))
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
        return engine_statuses(package, precision, self.version, self.gpu, self.cache_dir)

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
        self.precision_for(package)
        status = self._chosen[package.path][1][graph]  # checked once per package, not per graph
        engine = self._runtime.deserialize_cuda_engine(status.path.read_bytes())
        if engine is None:
            raise BackendError(f"graph {graph!r}: TensorRT could not deserialize {status.path}; "
                               f"rebuild it with `edge build {package.path} --rebuild`")
        session = TensorRTSession(graph, package.manifest.graphs[graph], self._trt, engine, self._memory)
        check_io(graph, session.spec, {n: list(session.device_buffer(n).shape) for n in session.input_names},
                 {n: list(session.device_buffer(n).shape) for n in session.output_names})
        return session


def engine_statuses(package: PolicyPackage, precision: str, tensorrt_version: str, gpu: GpuInfo,
                    cache_dir: str | Path | None = None) -> dict[str, EngineStatus]:
    root = cache_root(package, cache_dir)
    return {g: check_engine(root, engine_key(package, g, precision, tensorrt_version, gpu.name, gpu.compute_capability), g)
            for g in package.manifest.graphs}


def _progress_monitor(trt: ModuleType, report: Callable[[str], None]) -> Any:
    """A trt.IProgressMonitor printing top-level build phases and at most one step line every 5 s."""

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._steps: dict[str, int] = {}
            self._last = 0.0

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._steps[phase_name] = num_steps
            if parent_phase is None:
                report(f"  {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last > 5.0:
                self._last = now
                report(f"  {phase_name}: {step + 1}/{self._steps.get(phase_name, '?')}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            self._steps.pop(phase_name, None)

    return Monitor()


def build_engine(trt: ModuleType, onnx_path: Path, precision: str, typed: bool, timing_cache: Path,
                 report: Callable[[str], None], workspace_mb: int | None = None) -> bytes:
    """Parse one ONNX file and build a serialized engine; reads and updates the timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if precision == "fp16" and not typed:
        config.set_flag(trt.BuilderFlag.FP16)
    if workspace_mb:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt, report)
    config.progress_monitor = monitor  # TensorRT >= 8.6
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see TensorRT's log above)")
    write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def build_engines(package: PolicyPackage, precision: str, rebuild: bool = False, cache_dir: str | Path | None = None,
                  report: Callable[[str], None] = print, workspace_mb: int | None = None) -> dict[str, Path]:
    """Build every graph's engine for this device; fresh ones are kept, stale ones need `rebuild`."""
    trt = import_tensorrt()
    gpu = cuda_memory().gpu()
    typed = precision == "fp16" and strongly_typed(trt.__version__)
    root = cache_root(package, cache_dir)
    statuses = engine_statuses(package, precision, trt.__version__, gpu, cache_dir)
    stale = [s for s in statuses.values() if s.state == "stale"]
    if stale and not rebuild:
        raise BackendError("; ".join(s.reason for s in stale) + ". Stale engines are never reused or replaced "
                           "silently: pass --rebuild to build them again")
    built = {}
    for i, (graph, status) in enumerate(statuses.items(), 1):
        key: EngineKey = engine_key(package, graph, precision, trt.__version__, gpu.name, gpu.compute_capability)
        if status.state == "fresh" and not rebuild:
            report(f"[{i}/{len(statuses)}] {graph}: up to date ({status.path})")
            built[graph] = status.path
            continue
        onnx_path = engine_source(package, graph, precision, trt.__version__)[0]
        mode = "strongly typed FP16 ONNX" if typed else ("FP16 builder flag" if precision == "fp16" else "FP32")
        report(f"[{i}/{len(statuses)}] {graph}: {'re' if status.state != 'missing' else ''}building from "
               f"{onnx_path.name} ({mode}, TensorRT {trt.__version__}, {gpu.name}); this can take minutes")
        t0 = time.monotonic()
        data = build_engine(trt, onnx_path, precision, typed, root / key.directory() / TIMING_CACHE, report,
                            workspace_mb)
        seconds = time.monotonic() - t0
        built[graph] = write_engine(root, key, graph, data, {"build_seconds": round(seconds, 1), "mode": mode,
                                                             "onnx": str(onnx_path.relative_to(package.path))})
        report(f"[{i}/{len(statuses)}] {graph}: built in {seconds:.0f} s -> {built[graph]}")
    return built
