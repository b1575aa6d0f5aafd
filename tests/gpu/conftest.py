"""GPU tests: skipped unless real TensorRT and a CUDA GPU (pycuda or cuda-python) are usable."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tensorrt_gpu():
    """The TensorRT module and a GPU, or skip."""
    from edge.backends.cuda_memory import cuda_memory
    from edge.backends.tensorrt import import_tensorrt
    from edge.errors import BackendError

    try:
        trt = import_tensorrt()
        gpu = cuda_memory().gpu()
    except BackendError as exc:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {exc}")
    return trt, gpu
