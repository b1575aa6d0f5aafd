"""Test stub, NOT pycuda: only the GPU identity that engine cache keys need."""
