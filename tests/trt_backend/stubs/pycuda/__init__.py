"""Test stub, NOT pycuda (which needs a GPU to import): the driver-API slice edge/runtime/backends/cuda_memory.py
uses, with CUDA's per-thread context stacks (see fake_gpu.py). Hand-written because no real pycuda runs here."""
