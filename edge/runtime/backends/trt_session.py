"""The engine session: one deserialized TensorRT engine on one CUDA stream, with an explicit lifecycle.

Device and pinned host memory are allocated when the session is made and given back by `close()`
(also on leaving a `with` block), like Polygraphy's TrtRunner activate/deactivate. Every call runs
inside `CudaMemory.activate()`, so a session made on one thread runs on any other (the control
loop's, `AsyncExecutor`'s worker). I/O follows NVIDIA's samples/python/common_runtime.py (release/10.3):
`get_tensor_name` / `get_tensor_mode` / `get_tensor_shape` / `get_tensor_dtype`, one device buffer per
tensor bound with `set_tensor_address`, `execute_async_v3(stream_handle)`, async copies, one synchronize.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterable, Mapping

import numpy as np

from edge.errors import BackendError
from edge.runtime.backends.base import GraphSession
from edge.runtime.backends.cuda_memory import CudaMemory
from edge.runtime.package import GraphSpec


@dataclass(frozen=True)
class DeviceBuffer:
    """A tensor's device memory: raw pointer, shape and dtype (what `bind` and `device_buffer` exchange)."""

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


class EngineSession(GraphSession):
    """One engine on one stream. `run` is host in, host out; `run_device` leaves tensors on the GPU.

    Device-resident use (e.g. a diffusion loop that keeps the sample and the conditioning on the GPU):
    `device_buffer(name)` exposes a tensor's device memory, `bind(name, buffer)` points a tensor at other
    device memory (another session's output, or a second buffer from `alloc_like` to ping-pong the
    sample), and `run_device(feeds, fetch)` copies only `feeds` in and only `fetch` out.
    """

    def __init__(self, name: str, spec: GraphSpec, trt: ModuleType, engine: Any, memory: CudaMemory):
        super().__init__(name, spec)
        self._memory = memory
        self._engine: Any = engine
        self._context: Any = None
        self._stream: Any = None
        self._host: dict[str, np.ndarray] = {}
        self._own: dict[str, DeviceBuffer] = {}
        self._extra: list[DeviceBuffer] = []  # from alloc_like, freed with the session
        self._bound: dict[str, DeviceBuffer] = {}
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
            self._own[n] = DeviceBuffer(self._memory.alloc(self._host[n].nbytes), shapes[n], dtype)
            self._bound[n] = self._own[n]
            if not self._context.set_tensor_address(n, self._own[n].ptr):
                raise BackendError(f"graph {self.name!r}: TensorRT refused the address of tensor {n!r}")

    @property
    def closed(self) -> bool:
        return self._engine is None

    def _check_open(self) -> None:
        if self.closed:
            raise BackendError(f"graph {self.name!r}: the TensorRT session is closed")

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_device(feeds, self.output_names)

    def run_device(self, feeds: Mapping[str, np.ndarray] | None = None, fetch: Iterable[str] = ()) -> dict[str, np.ndarray]:
        """Copy `feeds` to their device buffers, execute, copy back only `fetch`; other tensors stay on the GPU."""
        self._check_open()
        feeds = feeds or {}
        fetch = list(fetch)
        with self._memory.activate():
            for n, value in feeds.items():
                host = self._host[n]
                np.copyto(host, np.asarray(value).reshape(host.shape), casting="same_kind")
                self._memory.htod(self._bound[n].ptr, host, self._stream)
            if not self._context.execute_async_v3(self._handle):
                raise BackendError(f"graph {self.name!r}: TensorRT execute_async_v3 failed")
            for n in fetch:
                self._memory.dtoh(self._host[n], self._bound[n].ptr, self._stream)
            self._memory.synchronize(self._stream)
        return {n: self._host[n].copy() for n in fetch}

    def device_buffer(self, name: str) -> DeviceBuffer:
        """The device memory tensor `name` currently reads from / writes to."""
        return self._bound[name]

    def alloc_like(self, name: str) -> DeviceBuffer:
        """A new device buffer shaped like tensor `name`, freed by `close()`; e.g. to ping-pong a sample."""
        self._check_open()
        own = self._own[name]
        with self._memory.activate():
            buffer = DeviceBuffer(self._memory.alloc(own.nbytes), own.shape, own.dtype)
        self._extra.append(buffer)
        return buffer

    def bind(self, name: str, buffer: DeviceBuffer | None) -> None:
        """Point tensor `name` at `buffer` (same shape and dtype), or back at the session's own buffer with None."""
        self._check_open()
        own = self._own[name]
        buffer = buffer or own
        if buffer.shape != own.shape or np.dtype(buffer.dtype) != own.dtype:
            raise BackendError(f"graph {self.name!r}: cannot bind {name!r} {own.shape} {own.dtype} to a "
                               f"{buffer.shape} {buffer.dtype} buffer")
        self._bound[name] = buffer
        if not self._context.set_tensor_address(name, buffer.ptr):
            raise BackendError(f"graph {self.name!r}: TensorRT refused the address of tensor {name!r}")

    def copy_device(self, dst: DeviceBuffer, src: DeviceBuffer) -> None:
        """Device-to-device copy on this session's stream (ordered with its executions)."""
        self._check_open()
        with self._memory.activate():
            self._memory.dtod(dst.ptr, src.ptr, min(dst.nbytes, src.nbytes), self._stream)

    def close(self) -> None:
        """Free the device buffers, pinned host buffers and stream, then drop the context and engine. Idempotent."""
        if self.closed:
            return
        with self._memory.activate():
            if self._stream is not None:
                self._memory.synchronize(self._stream)  # nothing may still read or write the buffers
            for buffer in [*self._own.values(), *self._extra]:
                self._memory.free(buffer.ptr)
            for host in self._host.values():
                self._memory.free_pinned(host)
            if self._stream is not None:
                self._memory.destroy_stream(self._stream)
        self._own, self._extra, self._bound, self._host = {}, [], {}, {}
        self._context = None  # the context before the engine it was made from
        self._engine = None
