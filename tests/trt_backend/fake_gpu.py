"""Hand-written GPU behaviour for CPU tests, NOT CUDA: device memory is numpy bytes keyed by fake pointers.

Used where nothing real can run without a GPU: a `CudaMemory` on host memory for the TensorRT flows
(`HostMemory`), the engine fakes' kernels read and write `DEVICE`, and the pycuda stub in stubs/pycuda
keeps per-thread context stacks like the CUDA driver API (a copy on a thread with no current context
fails with "invalid device context", as in inducer/pycuda#242). Streams are honoured: async copies and
kernels are queued on their stream and run only by its synchronize (or destroy), in order, as on a GPU.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable

import numpy as np

from edge.runtime.backends.cuda_memory import CudaMemory, GpuInfo

DEVICE: dict[int, np.ndarray] = {}  # pointer -> bytes of a live allocation
PINNED: dict[int, Any] = {}  # id -> live pinned host buffer (held, so that no id is reused while listed)
STREAMS: dict[int, list[Callable[[], None]]] = {}  # stream handle -> work queued on it
CLOSED: list[Any] = []  # adapters whose close() was called
TOTAL = 1 << 30
GPU = GpuInfo("Test GPU", "8.7", 16, 8 << 30, "12.6", "12.6")  # what both fake adapters report
_next = itertools.count(1)
_streams = itertools.count(100)
_lock = threading.Lock()


def stream_create() -> int:
    with _lock:
        handle = next(_streams)
        STREAMS[handle] = []
    return handle


def enqueue(handle: int, work: Callable[[], None]) -> None:
    """Queue `work` on a stream; RuntimeError for a handle that is not a live stream."""
    if handle not in STREAMS:
        raise RuntimeError(f"invalid stream handle {handle}")
    STREAMS[handle].append(work)


def stream_sync(handle: int) -> None:
    queue = STREAMS[handle]
    while queue:
        queue.pop(0)()


def stream_destroy(handle: int) -> None:
    stream_sync(handle)  # cudaStreamDestroy: queued work still completes
    del STREAMS[handle]


def device_alloc(nbytes: int) -> int:
    with _lock:
        ptr = 4096 * next(_next)
        DEVICE[ptr] = np.zeros(max(1, nbytes), np.uint8)
    return ptr


def device_free(ptr: int) -> None:
    with _lock:
        del DEVICE[ptr]


def free_bytes() -> int:
    return TOTAL - sum(a.nbytes for a in DEVICE.values())


def read(ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    return DEVICE[ptr][: int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)


def write(ptr: int, value: np.ndarray) -> None:
    raw = np.ascontiguousarray(value).view(np.uint8).ravel()
    DEVICE[ptr][: raw.size] = raw


class FakeStream:
    def __init__(self) -> None:
        self.handle = stream_create()


class HostMemory(CudaMemory):
    """A CudaMemory on host memory (no context needed, like cuda-python's runtime API)."""

    library = "host memory (test)"

    def gpu(self) -> GpuInfo:
        return GPU

    def stream(self) -> Any:
        return FakeStream()

    def stream_handle(self, stream: Any) -> int:
        return stream.handle

    def destroy_stream(self, stream: Any) -> None:
        stream_destroy(stream.handle)

    def alloc(self, nbytes: int) -> int:
        return device_alloc(nbytes)

    def free(self, ptr: int) -> None:
        device_free(ptr)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = np.zeros(shape, dtype)
        PINNED[id(array)] = array
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        del PINNED[id(array)]

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        enqueue(stream.handle, lambda: write(dst, src))

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        def copy() -> None:
            dst[...] = read(src, dst.shape, dst.dtype)
        enqueue(stream.handle, copy)

    def synchronize(self, stream: Any) -> None:
        stream_sync(stream.handle)

    def free_bytes(self) -> int:
        return free_bytes()

    def close(self) -> None:
        CLOSED.append(self)
