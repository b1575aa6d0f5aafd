"""Run CudaPythonMemory against the real `cuda.bindings.runtime` of one cuda-bindings version; print JSON.

Without a GPU the real module answers every call with an error, so two things are checked: construction
fails cleanly (a BackendError naming the call and CUDA's error), and every runtime function the adapter
calls exists with a signature (inspect.signature on the real Cython functions) that binds the call. For the
second, the calls bind against the real functions but return hand-written successes, since nothing can run.
"""

from __future__ import annotations

import ctypes
import inspect
import json
import sys
from types import ModuleType
from typing import Any

import numpy as np
from cuda import bindings
from cuda.bindings import runtime as real

from edge.errors import BackendError
from edge.runtime.backends.cuda_memory import CudaPythonMemory, cuda_memory

OK = real.cudaError_t.cudaSuccess
CALLS: list[str] = []
_host: list[Any] = []


def _malloc_host(size: int) -> tuple:
    buffer = ctypes.create_string_buffer(size)
    _host.append(buffer)
    return OK, ctypes.addressof(buffer)


def _memcpy(dst: Any, src: Any, count: int, kind: Any, stream: Any) -> tuple:
    assert isinstance(kind, real.cudaMemcpyKind) and isinstance(stream, real.cudaStream_t), (kind, stream)
    return (OK,)


SUCCESS = {
    "cudaGetDevice": lambda: (OK, 0),
    "cudaGetDeviceProperties": lambda device: (OK, real.cudaDeviceProp()),
    "cudaStreamCreate": lambda: (OK, real.cudaStream_t(1234)),
    "cudaStreamDestroy": lambda stream: (OK,),
    "cudaStreamSynchronize": lambda stream: (OK,),
    "cudaMalloc": lambda size: (OK, 4096),
    "cudaFree": lambda ptr: (OK,),
    "cudaMallocHost": _malloc_host,
    "cudaFreeHost": lambda ptr: (OK,),
    "cudaMemcpyAsync": _memcpy,
    "cudaMemGetInfo": lambda: (OK, 1 << 30, 1 << 31),
    "cudaRuntimeGetVersion": lambda: (OK, 12060),
    "cudaDriverGetVersion": lambda: (OK, 12080),
}


class Checked(ModuleType):
    """The real runtime module; its functions bind-check their arguments, then return SUCCESS's answer."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(real, name)  # AttributeError where this version lacks it
        if isinstance(value, type) or not callable(value):
            return value
        signature = inspect.signature(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            signature.bind(*args, **kwargs)
            CALLS.append(name)
            return SUCCESS[name](*args, **kwargs)

        return call


def main() -> None:
    report: dict[str, Any] = {"version": bindings.__version__}
    try:
        cuda_memory("cuda-python")
        report["no_gpu"] = "constructed"
    except BackendError as exc:
        report["no_gpu"] = str(exc)
    sys.modules["cuda.bindings.runtime"] = bindings.runtime = Checked("cuda.bindings.runtime")
    memory = CudaPythonMemory()
    stream = memory.stream()
    report["gpu"] = list(vars(memory.gpu()).values())
    report["handle"] = memory.stream_handle(stream)
    ptr = memory.alloc(16)
    host = memory.pinned((2, 2), np.float32)
    memory.htod(ptr, host, stream)
    memory.dtoh(host, ptr, stream)
    memory.synchronize(stream)
    memory.free(ptr)
    memory.free_pinned(host)
    memory.destroy_stream(stream)
    report["free_bytes"] = memory.free_bytes()
    report["calls"] = sorted(set(CALLS))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
