"""Test stub, NOT pycuda: driver calls on fake device memory (tests/trt_backend/fake_gpu.py) that need a current
context on the calling thread, as the CUDA driver API does; without one they fail like pycuda does."""

from __future__ import annotations

import threading
from typing import Any

import fake_gpu
import numpy as np

_local = threading.local()


class LogicError(RuntimeError):
    pass


def _stack() -> list:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def _need_context(call: str) -> None:
    if not _stack():
        raise LogicError(f"{call} failed: invalid device context")


def init(flags: int = 0) -> None:
    pass


class _Device:
    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def name(self) -> str:
        return "Test GPU"

    def compute_capability(self) -> tuple[int, int]:
        return (8, 7)

    def get_attribute(self, attribute: Any) -> int:
        return {device_attribute.MULTIPROCESSOR_COUNT: fake_gpu.GPU.sm_count}[attribute]

    def total_memory(self) -> int:
        return fake_gpu.GPU.total_memory

    def retain_primary_context(self) -> "Context":
        return Context(self)


def Device(ordinal: int) -> _Device:  # noqa: N802 (pycuda's name)
    return _Device(ordinal)


class Context:
    def __init__(self, device: _Device) -> None:
        self._device = device

    def push(self) -> None:
        _stack().append(self)

    @staticmethod
    def pop() -> None:
        _need_context("cuCtxPopCurrent")
        _stack().pop()

    @staticmethod
    def get_device() -> _Device:
        _need_context("cuCtxGetDevice")
        return _stack()[-1]._device


class device_attribute:  # noqa: N801 (pycuda's name)
    MULTIPROCESSOR_COUNT = 16


def get_version() -> tuple[int, int, int]:
    return (12, 6, 0)  # the CUDA pycuda was compiled with


def get_driver_version() -> int:
    return 12060


class Stream:
    def __init__(self, flags: int = 0) -> None:
        _need_context("cuStreamCreate")
        self.handle = fake_gpu.stream_create()

    def synchronize(self) -> None:
        _need_context("cuStreamSynchronize")
        fake_gpu.stream_sync(self.handle)


class DeviceAllocation:
    def __init__(self, nbytes: int) -> None:
        self._ptr = fake_gpu.device_alloc(nbytes)

    def __int__(self) -> int:
        return self._ptr

    def free(self) -> None:
        _need_context("cuMemFree")
        fake_gpu.device_free(self._ptr)


class HostAllocation(bytearray):
    def free(self) -> None:
        fake_gpu.PINNED.pop(id(self), None)


def mem_alloc(nbytes: int) -> DeviceAllocation:
    _need_context("cuMemAlloc")
    return DeviceAllocation(nbytes)


def mem_get_info() -> tuple[int, int]:
    _need_context("cuMemGetInfo")
    return fake_gpu.free_bytes(), fake_gpu.TOTAL


def pagelocked_empty(shape: Any, dtype: Any) -> np.ndarray:
    _need_context("cuMemHostAlloc")
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    allocation = HostAllocation(max(1, nbytes))
    fake_gpu.PINNED[id(allocation)] = allocation
    return np.ndarray(shape, dtype, buffer=allocation)


def memcpy_htod_async(dest: int, src: np.ndarray, stream: Stream | None = None) -> None:
    _need_context("cuMemcpyHtoDAsync")
    fake_gpu.enqueue(stream.handle, lambda: fake_gpu.write(int(dest), src))


def memcpy_dtoh_async(dest: np.ndarray, src: int, stream: Stream | None = None) -> None:
    _need_context("cuMemcpyDtoHAsync")

    def copy() -> None:
        dest[...] = fake_gpu.read(int(src), dest.shape, dest.dtype)
    fake_gpu.enqueue(stream.handle, copy)
