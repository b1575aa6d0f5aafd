"""Hand-written GPU behaviour for CPU tests, NOT CUDA: device memory is numpy bytes keyed by fake pointers.

Used where nothing real can run without a GPU: a `CudaMemory` on host memory for the TensorRT flows
(`HostMemory`), the engine fakes' kernels read and write `DEVICE`, and the pycuda stub in stubs/pycuda
keeps per-thread context stacks like the CUDA driver API (a copy on a thread with no current context
fails with "invalid device context", as in inducer/pycuda#242).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np

from edge.runtime.backends.cuda_memory import CudaMemory, GpuInfo

DEVICE: dict[int, np.ndarray] = {}  # pointer -> bytes of a live allocation
PINNED: set[int] = set()  # ids of live pinned host arrays
TOTAL = 1 << 30
_next = itertools.count(1)
_lock = threading.Lock()


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


class HostMemory(CudaMemory):
    """A CudaMemory on host memory (no context needed, like cuda-python's runtime API)."""

    library = "host memory (test)"

    def gpu(self) -> GpuInfo:
        return GpuInfo("Test GPU", "8.7")

    def stream(self) -> Any:
        return object()

    def stream_handle(self, stream: Any) -> int:
        return 7

    def destroy_stream(self, stream: Any) -> None:
        pass

    def alloc(self, nbytes: int) -> int:
        return device_alloc(nbytes)

    def free(self, ptr: int) -> None:
        device_free(ptr)

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = np.zeros(shape, dtype)
        PINNED.add(id(array))
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        PINNED.remove(id(array))

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        write(dst, src)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        dst[...] = read(src, dst.shape, dst.dtype)

    def synchronize(self, stream: Any) -> None:
        pass

    def free_bytes(self) -> int:
        return free_bytes()
