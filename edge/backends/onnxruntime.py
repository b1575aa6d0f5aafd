"""ONNX Runtime backend: the CPU / embedded default. Full graph optimisation, one thread pool per session."""

from __future__ import annotations

import os

import numpy as np

from edge.backends.base import Backend, GraphSession, check_io
from edge.errors import BackendError
from edge.package import PolicyPackage


class OrtSession(GraphSession):
    def __init__(self, name, spec, session):  # noqa: ANN001
        super().__init__(name, spec)
        self._session = session
        self._outputs = [o.name for o in session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, feeds)))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, providers: list[str] | None = None, threads: int | None = None):
        try:
            import onnxruntime
        except ImportError as exc:  # pragma: no cover - base install has it
            raise BackendError(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from None
        self._ort = onnxruntime
        self.providers = providers or ["CPUExecutionProvider"]
        self.threads = threads or max(1, os.cpu_count() or 1)

    def describe(self) -> str:
        return f"onnxruntime {self._ort.__version__} ({', '.join(self.providers)}, {self.threads} threads)"

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        ort = self._ort
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        spec = package.manifest.graphs[graph]
        try:
            session = ort.InferenceSession(str(package.graph_path(graph)), opts, providers=self.providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise BackendError(f"graph {graph!r}: ONNX Runtime could not load {package.graph_path(graph)}: {exc}") from None
        check_io(graph, spec, {i.name: i.shape for i in session.get_inputs()},
                 {o.name: o.shape for o in session.get_outputs()})
        return OrtSession(graph, spec, session)
