"""Test stub: like pycuda/autoprimaryctx.py, retains the primary context and pushes it on the importing thread only."""

import pycuda.driver as cuda

cuda.init()
context = cuda.Device(0).retain_primary_context()
context.push()
