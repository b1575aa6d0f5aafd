"""The engine session: one deserialized TensorRT engine on one CUDA stream, with an explicit lifecycle.

Device and pinned host memory are allocated when the session is made and given back by `close()`
(also on leaving a `with` block), like Polygraphy's TrtRunner activate/deactivate. Every call runs
inside `CudaMemory.activate()`, so a session made on one thread runs on any other (the control
loop's, `AsyncExecutor`'s worker). I/O follows NVIDIA's samples/python/common_runtime.py (release/10.3):
`get_tensor_name` / `get_tensor_mode` / `get_tensor_shape` / `get_tensor_dtype`, one device buffer per
tensor bound with `set_tensor_address`, `execute_async_v3(stream_handle)`, async copies, one synchronize.

A lock keeps `close()` from freeing buffers a `run()` on another thread is using (the async executor's worker
may still be inside execute_async_v3 when a run ends); `close()` waits at most CLOSE_WAIT_S for it, then
warns and leaks the session's memory rather than hang a robot's shutdown.
"""

from __future__ import annotations

import logging
import threading
from types import ModuleType
from typing import Any, Callable

import numpy as np

from edge.errors import BackendError
from edge.runtime.backends.base import GraphSession, release_all
from edge.runtime.backends.cuda_memory import CudaMemory
from edge.runtime.package import GraphSpec

log = logging.getLogger("edge.runtime.backends")
CLOSE_WAIT_S = 2.0  # longer than any policy call; AsyncExecutor gives up joining its worker after 5 s


class EngineSession(GraphSession):
    """One engine on one stream; `run` copies every input in and every output out.

    `shapes` holds each I/O tensor's static shape (checked against the manifest at load).
    """

    close_wait_s = CLOSE_WAIT_S

    def __init__(self, name: str, spec: GraphSpec, trt: ModuleType, engine: Any, memory: CudaMemory):
        super().__init__(name, spec)
        self._lock = threading.Lock()
        self._closed = False
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
        shape_io = [n for n in names if engine.is_shape_inference_io(n)]
        if shape_io:  # their values live on the host and decide shapes; this runtime binds device buffers only
            raise BackendError(f"graph {self.name!r}: the engine has shape-tensor I/O {shape_io}; this runtime runs "
                               "engines whose inputs and outputs are plain data tensors (re-export the package)")
        self._context = engine.create_execution_context()
        if self._context is None:
            raise BackendError(f"graph {self.name!r}: TensorRT could not create an execution context "
                               "(out of GPU memory?)")
        self._stream = self._memory.stream()
        self._handle = self._memory.stream_handle(self._stream)
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        for n in names:
            try:
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            except TypeError:  # BF16, FP8, INT4: numpy has no such type
                raise BackendError(f"graph {self.name!r}: tensor {n!r} is {engine.get_tensor_dtype(n)}, which numpy "
                                   "cannot hold; this runtime feeds and reads numpy arrays") from None
            self._host[n] = self._memory.pinned(shapes[n], dtype)
            self._device[n] = self._memory.alloc(self._host[n].nbytes)
            if not self._context.set_tensor_address(n, self._device[n]):
                raise BackendError(f"graph {self.name!r}: TensorRT refused the address of tensor {n!r}")

    @property
    def closed(self) -> bool:
        return self._closed

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy every input to the device, execute, copy every output back (one synchronize). `feeds` must name
        exactly the engine's inputs: a missing one would silently reuse the previous call's buffer."""
        missing = [n for n in self.input_names if n not in feeds]
        unknown = sorted(set(feeds) - set(self.input_names))
        if missing or unknown:
            raise BackendError(f"graph {self.name!r}: feeds must name every input {self.input_names} and nothing else "
                               f"(missing {missing}, unknown {unknown})")
        with self._lock:
            if self._closed:
                raise BackendError(f"graph {self.name!r}: the TensorRT session is closed")
            with self._memory.activate():
                for n in self.input_names:
                    host = self._host[n]
                    np.copyto(host, np.asarray(feeds[n]).reshape(host.shape), casting="same_kind")
                    self._memory.htod(self._device[n], host, self._stream)
                if not self._context.execute_async_v3(self._handle):
                    raise BackendError(f"graph {self.name!r}: TensorRT execute_async_v3 failed")
                for n in self.output_names:
                    self._memory.dtoh(self._host[n], self._device[n], self._stream)
                self._memory.synchronize(self._stream)
            return {n: self._host[n].copy() for n in self.output_names}

    def close(self) -> None:
        """Synchronize, free the device buffers, pinned host buffers and stream, then release the execution context
        and the engine (their device memory goes with them), each in its own try/finally. Waits at most
        `close_wait_s` for a run on another thread; past that it warns and leaks the memory. Idempotent."""
        if self._closed:
            return
        if not self._lock.acquire(timeout=self.close_wait_s):
            self._closed = True  # later runs are refused; the run in progress keeps its buffers
            log.warning("graph %r: a run was still inside TensorRT after %.1f s; its GPU memory is left allocated "
                        "(leaked) so that shutdown can go on", self.name, self.close_wait_s)
            return
        try:
            self._closed = True
            stream, device, host = self._stream, self._device, self._host
            self._stream, self._device, self._host = None, {}, {}
            memory = self._memory
            steps: list[Callable[[], None]] = []
            if stream is not None:
                steps.append(lambda: memory.synchronize(stream))  # nothing may still read or write the buffers
            steps += [lambda p=p: memory.free(p) for p in device.values()]
            steps += [lambda h=h: memory.free_pinned(h) for h in host.values()]
            if stream is not None:
                steps.append(lambda: memory.destroy_stream(stream))
            # TensorRT's Python objects free their device memory when the last reference goes (the context
            # before the engine it was made from), so drop them inside the CUDA context too
            steps += [lambda: setattr(self, "_context", None), lambda: setattr(self, "_engine", None)]
            with memory.activate():
                release_all(steps)
        finally:
            self._context = self._engine = None
            self._lock.release()
