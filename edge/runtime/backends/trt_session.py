"""The engine session: one deserialized TensorRT engine on one CUDA stream, with an explicit lifecycle.

Device and pinned host memory are allocated when the session is made and given back by `close()`
(also on leaving a `with` block), like Polygraphy's TrtRunner activate/deactivate. Every call runs
inside `CudaMemory.activate()`, so a session made on one thread runs on any other (the control
loop's, `AsyncExecutor`'s worker). I/O follows NVIDIA's samples/python/common_runtime.py (release/10.3):
`get_tensor_name` / `get_tensor_mode` / `get_tensor_shape` / `get_tensor_dtype`, one device buffer per
tensor bound with `set_tensor_address`, `execute_async_v3(stream_handle)`, async copies, one synchronize.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from edge.errors import BackendError
from edge.runtime.backends.base import GraphSession
from edge.runtime.backends.cuda_memory import CudaMemory
from edge.runtime.package import GraphSpec


class EngineSession(GraphSession):
    """One engine on one stream; `run` copies every input in and every output out.

    `shapes` holds each I/O tensor's static shape (checked against the manifest at load).
    """

    def __init__(self, name: str, spec: GraphSpec, trt: ModuleType, engine: Any, memory: CudaMemory):
        super().__init__(name, spec)
        self._memory = memory
        self._engine: Any = engine
        self._context: Any = None
        self._stream: Any = None
        self._host: dict[str, np.ndarray] = {}
        self._device: dict[str, int] = {}  # tensor name -> device pointer
        self.shapes: dict[str, tuple[int, ...]] = {}
        try:
            with memory.activate():
                self._allocate(trt)
        except BaseException:
            self.close()
            raise

    def _allocate(self, trt: ModuleType) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        shapes = {n: tuple(int(d) for d in engine.get_tensor_shape(n)) for n in names}
        dynamic = {n: s for n, s in shapes.items() if any(d < 0 for d in s)}
        if dynamic:  # exports are static; a -1 would size buffers negatively (no optimisation profile is set)
            raise BackendError(f"graph {self.name!r}: the engine has dynamic shapes {dynamic}; this runtime "
                               "runs static-shape exports only (re-export the package)")
        self.shapes = shapes
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"graph {self.name!r}: TensorRT could not create an execution context "
                               "(out of GPU memory?)")
        self._stream = self._memory.stream()
        self._handle = self._memory.stream_handle(self._stream)
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        for n in names:
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            self._host[n] = self._memory.pinned(shapes[n], dtype)
            self._device[n] = self._memory.alloc(self._host[n].nbytes)
            if not self._context.set_tensor_address(n, self._device[n]):
                raise BackendError(f"graph {self.name!r}: TensorRT refused the address of tensor {n!r}")

    @property
    def closed(self) -> bool:
        return self._engine is None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy `feeds` to the device, execute, copy every output back (one synchronize)."""
        if self.closed:
            raise BackendError(f"graph {self.name!r}: the TensorRT session is closed")
        with self._memory.activate():
            for n, value in feeds.items():
                host = self._host[n]
                np.copyto(host, np.asarray(value).reshape(host.shape), casting="same_kind")
                self._memory.htod(self._device[n], host, self._stream)
            if not self._context.execute_async_v3(self._handle):
                raise BackendError(f"graph {self.name!r}: TensorRT execute_async_v3 failed")
            for n in self.output_names:
                self._memory.dtoh(self._host[n], self._device[n], self._stream)
            self._memory.synchronize(self._stream)
        return {n: self._host[n].copy() for n in self.output_names}

    def close(self) -> None:
        """Free the device buffers, pinned host buffers and stream, then release the execution context and the
        engine (their device memory goes with them). Idempotent."""
        if self.closed:
            return
        with self._memory.activate():
            if self._stream is not None:
                self._memory.synchronize(self._stream)  # nothing may still read or write the buffers
            for ptr in self._device.values():
                self._memory.free(ptr)
            for host in self._host.values():
                self._memory.free_pinned(host)
            if self._stream is not None:
                self._memory.destroy_stream(self._stream)
            # TensorRT's Python objects free their device memory when the last reference goes (the context
            # before the engine it was made from), so drop them inside the CUDA context too
            self._context = None
            self._engine = None
        self._device, self._host = {}, {}
