"""TensorRTSession's buffer bookkeeping (host/device copies, bind, run_device) on an in-memory fake GPU.

The fakes stand in for TensorRT's engine/context and for CUDA memory (device pointers index numpy byte
buffers); they check our session logic, not TensorRT. The real thing runs in tests/gpu.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.backends.cuda_memory import CudaMemory, GpuInfo
from edge.backends.tensorrt import TensorRTSession
from edge.errors import BackendError
from edge.package import GraphSpec, TensorSpec

FAKE_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT=1, OUTPUT=2), nptype=lambda dtype: dtype)


class FakeMemory(CudaMemory):
    library = "fake"

    def __init__(self) -> None:
        self.device: dict[int, np.ndarray] = {}

    def gpu(self) -> GpuInfo:
        return GpuInfo("fake", "0.0")

    def stream(self) -> object:
        return object()

    def stream_handle(self, stream: object) -> int:
        return 7

    def alloc(self, nbytes: int) -> int:
        ptr = 1000 * (len(self.device) + 1)
        self.device[ptr] = np.zeros(nbytes, np.uint8)
        return ptr

    def free(self, ptr: int) -> None:
        del self.device[ptr]

    def pinned(self, shape, dtype) -> np.ndarray:
        return np.zeros(shape, dtype)

    def htod(self, dst, src, stream) -> None:
        self.device[dst][:] = src.view(np.uint8).ravel()

    def dtoh(self, dst, src, stream) -> None:
        dst.view(np.uint8).ravel()[:] = self.device[src]

    def dtod(self, dst, src, nbytes, stream) -> None:
        self.device[dst][:nbytes] = self.device[src][:nbytes]

    def synchronize(self, stream) -> None:
        pass


class FakeEngine:
    """out = 2 * x + y on float32 (1, 3) tensors, reading and writing the bound device addresses."""

    def __init__(self, memory: FakeMemory) -> None:
        self.memory = memory
        self.num_io_tensors = 3
        self.names = ["x", "y", "out"]

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> int:
        return 2 if name == "out" else 1

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (1, 3)

    def get_tensor_dtype(self, name: str) -> type:
        return np.float32

    def create_execution_context(self) -> SimpleNamespace:
        addresses: dict[str, int] = {}

        def execute_async_v3(handle: int) -> bool:
            assert handle == 7
            x, y = (self.memory.device[addresses[n]].view(np.float32) for n in ("x", "y"))
            self.memory.device[addresses["out"]][:] = (2 * x + y).view(np.uint8)
            return True

        return SimpleNamespace(set_tensor_address=addresses.__setitem__, execute_async_v3=execute_async_v3)


def session(memory: FakeMemory) -> TensorRTSession:
    spec = GraphSpec("g.onnx", "0", [TensorSpec("x", [1, 3]), TensorSpec("y", [1, 3])], [TensorSpec("out", [1, 3])], 17)
    return TensorRTSession("g", spec, FAKE_TRT, FakeEngine(memory), memory)


def test_run_and_device_resident_hooks():
    memory = FakeMemory()
    a, b = session(memory), session(memory)
    x, y = np.array([[1, 2, 3]], np.float32), np.array([[10, 20, 30]], np.float32)
    np.testing.assert_array_equal(a.run({"x": x, "y": y})["out"], 2 * x + y)
    assert a.input_names == ["x", "y"] and a.output_names == ["out"]

    b.bind("x", a.device_buffer("out"))            # b reads a's output where it lies on the GPU
    out = b.run_device({"y": y}, ["out"])["out"]
    np.testing.assert_array_equal(out, 2 * (2 * x + y) + y)

    spare = b.alloc_like("x")                      # ping-pong: copy on the device, rebind, run without feeding x
    b.copy_device(spare, a.device_buffer("out"))
    b.bind("x", spare)
    assert b.run_device() == {}                    # nothing fetched: the result stays on the device
    np.testing.assert_array_equal(b.run_device(fetch=["out"])["out"], 2 * (2 * x + y) + y)

    b.bind("x", None)                              # back to its own buffer, fed from the host again
    np.testing.assert_array_equal(b.run({"x": x, "y": y})["out"], 2 * x + y)


def test_bind_checks_shape_and_dtype():
    s = session(FakeMemory())
    wrong = s.device_buffer("x").__class__(123, (1, 4), np.dtype(np.float32))
    with pytest.raises(BackendError, match="cannot bind 'x'"):
        s.bind("x", wrong)
