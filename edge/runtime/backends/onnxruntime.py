"""ONNX Runtime backend: TensorRT or CUDA execution provider when onnxruntime-gpu offers them, else the CPU.

Full graph optimisation, one thread pool per session. On the TensorRT EP, FP16 and ORT's own engine
and timing caches (under `<package>/engines/ort-tensorrt`) are provider options; on the CUDA EP, FP16
means loading the package's FP16 ONNX copy. The CPU always runs the FP32 graphs unless precision="fp16"
is asked for explicitly (as the FP16 preflight does): ORT's CPU kernels then compute FP16 nodes in FP32.

On the CPU, a graph with little work runs on one thread (handing work to a second thread costs more than it
saves), and a large graph loads from the optimised-model cache (edge/runtime/backends/ort_cache.py): the same graph with
its weights in a separate file, which ONNX Runtime loads several times faster and without a second copy of the
weights in memory (docs/performance.md).
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendError
from edge.runtime.backends import ort_cache
from edge.runtime.backends.base import Backend, GraphSession, check_io
from edge.runtime.backends.engine_cache import ENGINE_DIR, PRECISIONS, fp16_graph
from edge.runtime.package import PolicyPackage

TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PREFERENCE = (TRT_EP, CUDA_EP, CPU_EP)
ORT_ENGINE_DIR = "ort-tensorrt"
ORT_HINT = ("on a Jetson install NVIDIA's onnxruntime-gpu wheel for your JetPack (CUDA and TensorRT providers), or "
            "`pip install onnxruntime` for the CPU only; elsewhere `pip install onnxruntime`")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")  # "# R36 (release), REVISION: 4.0, ..." on every JetPack image
# Jetson Linux major release -> the Jetson AI Lab index with onnxruntime-gpu built for that JetPack (unverified on a
# Jetson: the index is NVIDIA's community one, https://pypi.jetson-ai-lab.io).
JETPACK_ORT_INDEX = {36: ("JetPack 6", "https://pypi.jetson-ai-lab.io/jp6/cu126")}


def ort_install_hint(tegra_release: Path = TEGRA_RELEASE) -> str:
    """What to install when no onnxruntime is importable: on a Jetson whose JetPack is known, the one command for
    it (setup.py leaves the CPU build out there); elsewhere the general advice."""
    try:
        line = tegra_release.read_text(encoding="utf-8", errors="replace").splitlines()[0]
        major = int(line.split("R", 1)[1].split()[0])
    except (OSError, IndexError, ValueError):
        return ORT_HINT
    if major not in JETPACK_ORT_INDEX:
        return f"this Jetson runs Jetson Linux R{major}: {ORT_HINT}"
    jetpack, index = JETPACK_ORT_INDEX[major]
    return f"this Jetson runs {jetpack} (Jetson Linux R{major}); fix: `pip install onnxruntime-gpu --index-url {index}`"


def import_onnxruntime() -> Any:
    """The onnxruntime module, or BackendError saying which distribution to install (setup.py leaves it out on a
    Jetson)."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(f"no onnxruntime is importable ({exc}): {ort_install_hint()}") from None
    return onnxruntime


def onnxruntime_conflict() -> str | None:
    """The fix when both onnxruntime and onnxruntime-gpu are installed (both write the `onnxruntime` module, and
    whichever came last wins: the GPU providers can disappear, microsoft/onnxruntime#26996, #7748); else None."""
    installed = {}
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if len(installed) < 2:
        return None
    return (f"both onnxruntime {installed['onnxruntime']} and onnxruntime-gpu {installed['onnxruntime-gpu']} are "
            "installed and overwrite each other's files; fix: `pip uninstall -y onnxruntime onnxruntime-gpu` then "
            "reinstall only onnxruntime-gpu (on a Jetson, NVIDIA's wheel for your JetPack)")
SMALL_GRAPH_BYTES = 32 << 20  # below this a graph runs on one intra-op thread unless `threads` says otherwise


class OrtSession(GraphSession):
    """One onnxruntime.InferenceSession; `close()` drops it, which frees its memory (it has no close of its own)."""

    def __init__(self, name, spec, session):  # noqa: ANN001
        super().__init__(name, spec)
        self._session = session
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise BackendError(f"graph {self.name!r}: the ONNX Runtime session is closed")
        return dict(zip(self._outputs, self._session.run(self._outputs, feeds)))

    def close(self) -> None:
        self._session = None


def loop_free_cores() -> int:
    """All cores but one, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def fp16_preflight_passed(package: PolicyPackage) -> bool:
    preflight = package.manifest.fp16_preflight
    return preflight is not None and preflight.ok


class OnnxRuntimeBackend(Backend):
    """`providers` default to the best this onnxruntime build offers (TensorRT EP, CUDA EP, CPU).

    precision "auto" is FP16 on a GPU provider when the package's FP16 preflight passed, else FP32.
    `threads` (intra-op) default, per graph, to one per core but one (left to the control loop and the bus) for
    graphs of SMALL_GRAPH_BYTES and more, and to one below that.
    `spinning=True` lets idle worker threads busy-wait between runs (ORT's own default): faster small graphs,
    but on a small CPU it steals the control loop's time (benchmarks/RESULTS.md, loop section), so it is off.
    `cache=False` loads every graph from the package, never from the optimised-model cache (ort_cache.py).
    """

    name = "onnxruntime"

    def __init__(self, providers: list[str] | None = None, threads: int | None = None, precision: str = "auto",
                 spinning: bool = False, cache: bool = True):
        onnxruntime = import_onnxruntime()
        if precision not in ("auto", *PRECISIONS):
            raise BackendError(f"unknown precision {precision!r}; choose auto, fp32 or fp16")
        self._ort = onnxruntime
        self.spinning = spinning
        available = onnxruntime.get_available_providers()
        self.providers = providers or [p for p in PREFERENCE if p in available]
        self.threads = threads  # None: per graph, by size (graph_threads)
        self.cache = cache
        self.precision = precision
        self.active: list[str] = []  # providers the last loaded session really uses
        self.resolved: str | None = None  # precision the last loaded session runs in

    def describe(self) -> str:
        used = self.active or self.providers
        precision = self.resolved or (self.precision if self.precision != "auto" else "auto precision")
        threads = self.threads or f"1-{loop_free_cores()}"
        return f"onnxruntime {self._ort.__version__} ({', '.join(used)}, {precision}, {threads} threads)"

    def graph_threads(self, path: Path) -> int:
        """Intra-op threads for one graph: as set, else all cores but one, or one for a small graph (weights under
        SMALL_GRAPH_BYTES), whose nodes take microseconds, less than waking a second thread costs. The core left
        free keeps the control loop on time while a chunk computes (benchmarks/RESULTS.md, loop_defaults)."""
        if self.threads:
            return self.threads
        return 1 if path.stat().st_size < SMALL_GRAPH_BYTES else loop_free_cores()

    def precision_for(self, package: PolicyPackage) -> str:
        if self.precision != "auto":
            return self.precision
        gpu = any(p in (TRT_EP, CUDA_EP) for p in self.providers)
        return "fp16" if gpu and fp16_preflight_passed(package) else "fp32"

    def _providers(self, package: PolicyPackage, fp16: bool) -> list[Any]:
        """Provider list with options; the TensorRT EP caches its engines under the package."""
        cache = str(package.path / ENGINE_DIR / ORT_ENGINE_DIR)
        options = {TRT_EP: {"trt_fp16_enable": fp16, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                            "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}}
        return [(p, options[p]) if p in options else p for p in self.providers]

    def graph_file(self, package: PolicyPackage, graph: str, precision: str) -> Path:
        """FP16 copy for FP16 without the TensorRT EP (which converts the FP32 graph itself), else the FP32 graph."""
        if precision == "fp16" and TRT_EP not in self.providers:
            return fp16_graph(package, graph)[0]
        return package.graph_path(graph)

    def _options(self, path: Path) -> Any:
        ort = self._ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.graph_threads(path)
        # Spinning keeps worker threads busy-waiting between runs: ~1.5x faster on small graphs (diffusion
        # denoiser steps), but with it the 100 Hz loop on 2 cores missed deadlines it otherwise meets.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        return opts

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        ort = self._ort
        spec = package.manifest.graphs[graph]
        precision = self.precision_for(package)
        path = self.graph_file(package, graph, precision)
        if TRT_EP in self.providers:
            (package.path / ENGINE_DIR / ORT_ENGINE_DIR).mkdir(parents=True, exist_ok=True)
        providers = self._providers(package, precision == "fp16")
        cached = (ort_cache.cached_model(ort, path, spec.sha256)
                  if self.cache and self.providers == [CPU_EP] and path == package.graph_path(graph) else None)
        try:
            if cached is not None:
                try:
                    session = ort.InferenceSession(str(cached), self._options(path), providers=providers)
                except Exception:  # a damaged entry: drop it, load the package's graph
                    ort_cache.discard(cached)
                    cached = None
            if cached is None:
                session = ort.InferenceSession(str(path), self._options(path), providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise BackendError(f"graph {graph!r}: ONNX Runtime could not load {path}: {exc}") from None
        self.active = session.get_providers()
        self.resolved = precision
        check_io(graph, spec, {i.name: i.shape for i in session.get_inputs()},
                 {o.name: o.shape for o in session.get_outputs()})
        return OrtSession(graph, spec, session)
