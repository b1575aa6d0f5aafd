"""Test stub: the real module initialises CUDA's primary context on import."""
