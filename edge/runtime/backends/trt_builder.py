"""The engine builder: ONNX -> serialized TensorRT engine, with progress, a timing cache and the precision rule.

`build_engines` (what `edge build` runs) checks the package's graphs against TensorRT 10.3's ONNX operator
support first, then builds each graph whose cached engine is missing, keeping fresh ones and refusing to
replace stale ones without `rebuild`. The precision rule is in engine_cache.py: FP16 engines are strongly
typed networks parsed from the preflight's FP16 ONNX, FP32 engines the FP32 ONNX, TF32 off in both, and
no `BuilderFlag.FP16` on any version. API as in NVIDIA's samples and Polygraphy (release/10.3, 10.12, 11.0):
`Builder.create_network(flags)`, `OnnxParser.parse_from_file` / `num_errors` / `get_error(i).desc()`,
`IBuilderConfig.clear_flag`, `set_memory_pool_limit(MemoryPoolType.WORKSPACE, bytes)`,
`create_timing_cache` / `set_timing_cache(cache, ignore_mismatch)`, `progress_monitor` (an IProgressMonitor),
`Builder.build_serialized_network(network, config)` returning IHostMemory or None.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from edge.errors import BackendError
from edge.runtime.backends.cuda_memory import cuda_memory
from edge.runtime.backends.engine_cache import (
    ALWAYS_STRONGLY_TYPED_FROM,
    TIMING_CACHE,
    BuildOptions,
    EngineStatus,
    cache_root,
    check_engine,
    engine_key,
    engine_source,
    strongly_typed,
    version_tuple,
    write_engine,
)
from edge.runtime.backends.tensorrt import import_tensorrt
from edge.runtime.backends.trt_compat import check_package_graphs
from edge.runtime.files import write_atomic
from edge.runtime.package import PolicyPackage

Report = Callable[[str], None]


def network_flags(trt: ModuleType, typed: bool) -> int:
    """Creation flags: kSTRONGLY_TYPED on 10.x when typed; nothing on 11.x, which is always strongly typed."""
    if not typed or version_tuple(trt.__version__) >= ALWAYS_STRONGLY_TYPED_FROM:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _progress_monitor(trt: ModuleType, report: Report) -> Any:
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


class EngineBuilder:
    """Builds serialized engines with one TensorRT module; `build` is one ONNX file -> engine bytes."""

    def __init__(self, trt: ModuleType, report: Report = print) -> None:
        self._trt = trt
        self._report = report

    def build(self, onnx_path: Path, precision: str, timing_cache: Path, options: BuildOptions) -> bytes:
        """Parse `onnx_path`, build under the precision rule, update the timing cache; BackendError on failure."""
        trt = self._trt
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(network_flags(trt, strongly_typed(precision, trt.__version__)))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = []
            for i in range(parser.num_errors):
                error = parser.get_error(i)
                errors.append(f"node {error.node()} ({error.node_name()}): {error.desc()}")
            raise BackendError(f"TensorRT could not parse {onnx_path}: {'; '.join(errors) or 'no error recorded'}")
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            if any(int(d) < 0 for d in tensor.shape):
                raise BackendError(f"{onnx_path}: input {tensor.name!r} has a dynamic shape {tuple(tensor.shape)}; "
                                   "this runtime builds static-shape exports only")
        config = builder.create_builder_config()
        config.clear_flag(trt.BuilderFlag.TF32)
        if options.workspace_mb:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        monitor = _progress_monitor(trt, self._report)
        config.progress_monitor = monitor
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendError(f"TensorRT failed to build an engine from {onnx_path} (see TensorRT's log above)")
        write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
        return bytes(serialized)


def engine_statuses(package: PolicyPackage, precision: str, tensorrt_version: str, gpu: tuple[str, str],
                    engine_dir: str | Path | None = None,
                    options: BuildOptions | None = None) -> dict[str, EngineStatus]:
    """Engine status of every graph of `package` for this TensorRT, GPU (name, capability) and precision."""
    root = cache_root(package, engine_dir)
    return {g: check_engine(root, engine_key(package, g, precision, tensorrt_version, *gpu), g, options)
            for g in package.manifest.graphs}


def build_engines(package: PolicyPackage, precision: str, rebuild: bool = False, engine_dir: str | Path | None = None,
                  report: Report = print, options: BuildOptions = BuildOptions()) -> dict[str, Path]:
    """Build every graph's engine for this device; fresh ones are kept, stale ones need `rebuild`."""
    check_package_graphs(package, precision)  # before TensorRT or CUDA is touched
    trt = import_tensorrt()
    memory = cuda_memory()
    gpu = memory.gpu()
    root = cache_root(package, engine_dir)
    statuses = engine_statuses(package, precision, trt.__version__, (gpu.name, gpu.compute_capability), engine_dir,
                               options)
    stale = [s for s in statuses.values() if s.state == "stale"]
    if stale and not rebuild:
        raise BackendError("; ".join(s.reason for s in stale) + ". Stale engines are never reused or replaced "
                           "silently: pass --rebuild to build them again")
    builder = EngineBuilder(trt, report)
    built = {}
    for i, (graph, status) in enumerate(statuses.items(), 1):
        key = engine_key(package, graph, precision, trt.__version__, gpu.name, gpu.compute_capability)
        if status.state == "fresh" and not rebuild:
            report(f"[{i}/{len(statuses)}] {graph}: up to date ({status.path})")
            built[graph] = status.path
            continue
        onnx_path = engine_source(package, graph, precision)[0]
        report(f"[{i}/{len(statuses)}] {graph}: {'re' if status.state != 'missing' else ''}building from "
               f"{onnx_path.relative_to(package.path)} ({precision.upper()}, {key.builder_flags}, TensorRT "
               f"{trt.__version__}, {gpu.name}); this can take minutes")
        t0 = time.monotonic()
        with memory.activate():
            data = builder.build(onnx_path, precision, root / key.directory() / TIMING_CACHE, options)
        seconds = time.monotonic() - t0
        built[graph] = write_engine(root, key, graph, data, options,
                                    {"build_seconds": round(seconds, 1),
                                     "onnx": str(onnx_path.relative_to(package.path))})
        report(f"[{i}/{len(statuses)}] {graph}: built in {seconds:.0f} s -> {built[graph]}")
    return built
