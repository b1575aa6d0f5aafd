"""GPU tests, split by what they need: CUDA only (cuda-python or pycuda), or TensorRT as well. Skipped without them.

Run on the device: `pytest tests/gpu -s` (add `-k cuda` for the CUDA-only part on a machine without TensorRT).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.errors import BackendError
from edge.runtime.backends.cuda_memory import LIBRARIES, CudaMemory, cuda_memory


@pytest.fixture(params=sorted(LIBRARIES))
def cuda(request) -> CudaMemory:
    """Each CUDA binding that is installed and finds a GPU."""
    try:
        return cuda_memory(request.param)
    except BackendError as exc:
        pytest.skip(f"needs {request.param} and a CUDA GPU: {exc}")


@pytest.fixture(scope="session")
def tensorrt_gpu():
    """The TensorRT module and a GPU, or skip."""
    from edge.runtime.backends.tensorrt import import_tensorrt

    try:
        return import_tensorrt(), cuda_memory().gpu()
    except BackendError as exc:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {exc}")


@pytest.fixture
def bundled_copy(tmp_path):
    """`bundled_copy("demo_act")` -> a private copy of a bundled package (engines are written into it)."""
    root = Path(__file__).resolve().parents[2] / "edge" / "data"
    return lambda name: Path(shutil.copytree(root / name, tmp_path / name))
