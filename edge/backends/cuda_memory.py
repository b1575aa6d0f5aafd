"""The few CUDA calls the TensorRT backend makes, behind one small adapter: pycuda, else cuda-python.

pycuda is what the design card names; NVIDIA's current TensorRT samples use cuda-python
(`cuda.bindings.runtime`, formerly `cuda.cudart`). Either is enough; nothing else touches CUDA.
Written to both libraries' documented APIs; UNVERIFIED here (no GPU), see docs/tensorrt.md.
"""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import BackendError

INSTALL_HINT = "pip install pycuda (or cuda-python); on a Jetson use the CUDA that JetPack ships"


@dataclass(frozen=True)
class GpuInfo:
    """The GPU engines are built for: its name and compute capability ("8.7" on Orin)."""

    name: str
    compute_capability: str


class CudaMemory(ABC):
    """Device memory, pinned host memory, one stream's async copies. Device pointers are plain ints."""

    library: str

    @abstractmethod
    def gpu(self) -> GpuInfo: ...

    @abstractmethod
    def stream(self) -> Any: ...

    @abstractmethod
    def stream_handle(self, stream: Any) -> int: ...

    @abstractmethod
    def alloc(self, nbytes: int) -> int: ...

    @abstractmethod
    def free(self, ptr: int) -> None: ...

    @abstractmethod
    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray: ...

    @abstractmethod
    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None: ...

    @abstractmethod
    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None: ...

    @abstractmethod
    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None: ...

    @abstractmethod
    def synchronize(self, stream: Any) -> None: ...


class PycudaMemory(CudaMemory):
    """pycuda on the device's primary context (the one TensorRT's runtime uses too)."""

    library = "pycuda"

    def __init__(self) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  (initialises CUDA, retains the primary context)
        import pycuda.driver as cuda

        self._cuda = cuda
        self._allocations: dict[int, Any] = {}  # keeps DeviceAllocation objects alive

    def gpu(self) -> GpuInfo:
        dev = self._cuda.Context.get_device()
        major, minor = dev.compute_capability()
        return GpuInfo(dev.name(), f"{major}.{minor}")

    def stream(self) -> Any:
        return self._cuda.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def alloc(self, nbytes: int) -> int:
        allocation = self._cuda.mem_alloc(max(1, nbytes))
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        self._allocations.pop(ptr).free()

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return self._cuda.pagelocked_empty(shape, dtype)

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self._cuda.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self._cuda.memcpy_dtoh_async(dst, src, stream)

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self._cuda.memcpy_dtod_async(dst, src, nbytes, stream)

    def synchronize(self, stream: Any) -> None:
        stream.synchronize()


class CudaPythonMemory(CudaMemory):
    """cuda-python's runtime API; every call returns (error, *results)."""

    library = "cuda-python"

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:  # cuda-python < 12.6 layout
            from cuda import cudart
        self._rt = cudart

    def _call(self, result: tuple) -> Any:
        err, *rest = result
        if err != self._rt.cudaError_t.cudaSuccess:
            raise BackendError(f"CUDA runtime error {err}")
        return rest[0] if len(rest) == 1 else tuple(rest)

    def gpu(self) -> GpuInfo:
        props = self._call(self._rt.cudaGetDeviceProperties(self._call(self._rt.cudaGetDevice())))
        name = props.name.split(b"\0", 1)[0].decode() if isinstance(props.name, bytes) else str(props.name)
        return GpuInfo(name, f"{props.major}.{props.minor}")

    def stream(self) -> Any:
        return self._call(self._rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def alloc(self, nbytes: int) -> int:
        return int(self._call(self._rt.cudaMalloc(max(1, nbytes))))

    def free(self, ptr: int) -> None:
        self._call(self._rt.cudaFree(ptr))

    def pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host array; lives until the process exits (sessions are loaded once per run)."""
        dtype = np.dtype(dtype)
        nbytes = max(1, int(np.prod(shape)) * dtype.itemsize)
        ptr = self._call(self._rt.cudaMallocHost(nbytes))
        raw = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_uint8)), (nbytes,))
        return raw[: int(np.prod(shape)) * dtype.itemsize].view(dtype).reshape(shape)

    def htod(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self._rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))

    def dtoh(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self._rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))

    def dtod(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self._rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._call(self._rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def synchronize(self, stream: Any) -> None:
        self._call(self._rt.cudaStreamSynchronize(stream))


def cuda_memory() -> CudaMemory:
    """pycuda if importable, else cuda-python; BackendError naming what to install when neither is."""
    problems = []
    for cls in (PycudaMemory, CudaPythonMemory):
        try:
            return cls()
        except ImportError as exc:
            problems.append(f"{cls.library}: {exc}")
        except Exception as exc:  # a library is installed but CUDA is not usable (no driver, no GPU)
            problems.append(f"{cls.library}: {type(exc).__name__}: {exc}")
    raise BackendError(f"no usable CUDA Python bindings ({'; '.join(problems)}); {INSTALL_HINT}")
