"""The few CUDA calls the TensorRT path makes, behind one small adapter: cuda-python first, else pycuda.

Which context: TensorRT's runtime uses the device's *primary* context (the CUDA runtime API's). The
control loop calls the policy from its own thread and `AsyncExecutor` from a worker thread, so every
call must work on whichever thread makes it:

- cuda-python's runtime API (`cuda.bindings.runtime`, the module NVIDIA's samples use from TensorRT 10.x;
  `cuda.cudart` before cuda-python 12.6.1) binds the primary context implicitly on each thread's first
  runtime call, so it needs no context handling. That is why it is preferred.
- pycuda's driver API has per-thread context stacks: `pycuda.autoprimaryctx` pushes the primary context
  on the importing thread only, and `memcpy_htod_async` on any other thread fails with "invalid device
  context" (pycuda: pycuda/autoprimaryctx.py; reported with TensorRT in inducer/pycuda#242). So
  PycudaMemory retains the primary context (`Device.retain_primary_context()`, doc/driver.rst) and
  `activate()` pushes it around every call and pops it after, on the calling thread.

Written to both libraries' documented APIs; run on a GPU only by tests/gpu (see docs/tensorrt.md).
"""

from __future__ import annotations

import contextlib
import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from edge.errors import BackendError

# cuda-python 13 targets CUDA 13; JetPack 6 ships CUDA 12.6, so the pin keeps the 12.x bindings there.
INSTALL_HINT = ("pip install 'cuda-python>=12.6,<13' for CUDA 12 (JetPack 6), or 'cuda-python>=13' for CUDA 13; "
                "pycuda also works")


@dataclass(frozen=True)
class GpuInfo:
    """The GPU engines are built for: name, compute capability ("8.7" on Orin), and what tells two devices of the
    same name apart (an Orin NX from an AGX): SM count, total memory in bytes (on a Jetson the shared system
    memory), CUDA runtime and driver versions ("12.6")."""

    name: str
    compute_capability: str
    sm_count: int = 0
    total_memory: int = 0
    cuda_runtime: str = ""
    cuda_driver: str = ""


def cuda_version(encoded: int) -> str:
    """CUDA's integer version (1000 * major + 10 * minor, as cudaRuntimeGetVersion and cuDriverGetVersion give it)
    as "major.minor"."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


class CudaMemory(ABC):
    """Device memory, pinned host memory, one stream's async copies. Device pointers are plain ints.

    Every call must be made inside `with memory.activate():` on the thread that makes it.
    """

    library: str

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make this adapter's CUDA context current on the calling thread for the block (no-op if implicit)."""
        yield

    @abstractmethod
    def gpu(self) -> GpuInfo: ...

    @abstractmethod
    def stream(self) -> Any: ...

    @abstractmethod
    def stream_handle(self, stream: Any) -> int: ...

    @abstractmethod
    def destroy_stream(self, stream: Any) -> None: ...

    @abstractmethod
    def alloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...

    @abstractmethod
    def free_pinned(self, array: np.ndarray) -> None: ...

    @abstractmethod
    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None: ...

    @abstractmethod
    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Any) -> None: ...

    @abstractmethod
    def free_bytes(self) -> int:
        """Free device memory in bytes (tests check that `close()` gives memory back)."""

    def close(self) -> None:
        """Release what the adapter itself holds (after every buffer it gave out is freed); nothing by default."""


class CudaPythonMemory(CudaMemory):
    """cuda-python's runtime API; every call returns (error, *results). Works from any thread unaided."""

    library = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6.1 layout (release notes 12.6.1: cuda.cudart -> cuda.bindings.runtime)
            from cuda import cudart
        try:  # cuda-bindings >= 12.9: int(handle) is deprecated in 13.0 (13.0.0 release notes)
            from cuda.bindings.utils import get_cuda_native_handle
        except ImportError:
            get_cuda_native_handle = int
        self._rt = cudart
        self._handle = get_cuda_native_handle
        self._device = self._call(cudart.cudaGetDevice(), "cudaGetDevice")  # fails here without a driver or GPU

    def _call(self, result: tuple, what: str) -> Any:
        err, *rest = result
        if err != self._rt.cudaError_t.cudaSuccess:
            raise BackendError(f"CUDA runtime error in {what}: {getattr(err, 'name', err)}")
        return rest[0] if len(rest) == 1 else tuple(rest)

    def gpu(self) -> GpuInfo:
        props = self._call(self._rt.cudaGetDeviceProperties(self._device), "cudaGetDeviceProperties")
        name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
        runtime = self._call(self._rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        driver = self._call(self._rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        return GpuInfo(name, f"{props.major}.{props.minor}", int(props.multiProcessorCount), int(props.totalGlobalMem),
                       cuda_version(int(runtime)), cuda_version(int(driver)))

    def stream(self) -> Any:
        return self._call(self._rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream: Any) -> int:
        return int(self._handle(stream))

    def destroy_stream(self, stream: Any) -> None:
        self._call(self._rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def alloc(self, nbytes: int) -> int:
        return int(self._call(self._rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._call(self._rt.cudaFree(ptr), "cudaFree")

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host array viewing cudaMallocHost memory (samples/python/common_runtime.py, HostDeviceMem)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._call(self._rt.cudaMallocHost(max(1, nbytes)), "cudaMallocHost"))
        raw = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)), (max(1, nbytes),))
        return raw[:nbytes].view(dtype).reshape(shape)

    def free_pinned(self, array: np.ndarray) -> None:
        self._call(self._rt.cudaFreeHost(array.ctypes.data), "cudaFreeHost")

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self._rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync")

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self._rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: Any) -> None:
        self._call(self._rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def free_bytes(self) -> int:
        return int(self._call(self._rt.cudaMemGetInfo(), "cudaMemGetInfo")[0])

    # close(): nothing to release. The runtime API shares the device's primary context with every other user in
    # the process; cudaDeviceReset would destroy their memory too.


class PycudaMemory(CudaMemory):
    """pycuda on the device's retained primary context, pushed around every call on the calling thread."""

    library = "pycuda"

    def __init__(self) -> None:
        import pycuda.driver as cuda

        cuda.init()
        self._cuda = cuda
        self._context = cuda.Device(0).retain_primary_context()  # not made current (doc/driver.rst)
        self._allocations: dict[int, Any] = {}  # keeps DeviceAllocation objects alive until free()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        if self._context is None:
            raise BackendError("the CUDA adapter (pycuda) is closed: its primary context was released")
        self._context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def gpu(self) -> GpuInfo:
        with self.activate():
            dev = self._cuda.Context.get_device()
            major, minor = dev.compute_capability()
            runtime = ".".join(map(str, self._cuda.get_version()[:2]))  # the CUDA pycuda was built with
            return GpuInfo(dev.name(), f"{major}.{minor}",
                           int(dev.get_attribute(self._cuda.device_attribute.MULTIPROCESSOR_COUNT)),
                           int(dev.total_memory()), runtime, cuda_version(int(self._cuda.get_driver_version())))

    def stream(self) -> Any:
        return self._cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream: Any) -> None:
        pass  # pycuda destroys a Stream when it is garbage-collected

    def alloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._cuda.pagelocked_empty(shape, dtype)

    def free_pinned(self, array: np.ndarray) -> None:
        array.base.free()  # the HostAllocation behind pagelocked_empty's array

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._cuda.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._cuda.memcpy_dtoh_async(dst, src, stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def free_bytes(self) -> int:
        return int(self._cuda.mem_get_info()[0])

    def close(self) -> None:
        """Drop the retained primary context: pycuda releases it when its Context object goes, as
        pycuda/autoprimaryctx.py does at exit. Idempotent; no call may follow."""
        self._context = None


LIBRARIES = {"cuda-python": CudaPythonMemory, "pycuda": PycudaMemory}


def cuda_memory(library: str | None = None) -> CudaMemory:
    """cuda-python if usable, else pycuda (or the named `library`); BackendError naming what to install."""
    if library is not None and library not in LIBRARIES:
        raise BackendError(f"unknown CUDA library {library!r}; choose one of {sorted(LIBRARIES)}")
    problems = []
    for name in [library] if library else list(LIBRARIES):
        try:
            return LIBRARIES[name]()
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
        except Exception as exc:  # installed, but CUDA is not usable here (no driver, no GPU)
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    raise BackendError(f"no usable CUDA Python bindings ({'; '.join(problems)}); {INSTALL_HINT}")
