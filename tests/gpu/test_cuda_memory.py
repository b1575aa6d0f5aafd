"""CUDA only, no TensorRT: each binding's device memory, copies and streams, used from a thread that did not make them."""

from __future__ import annotations

import threading

import numpy as np


def on_worker(fn):
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised on the test thread
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_round_trip_from_a_worker_thread(cuda):
    with cuda.activate():  # made on the test thread ...
        stream = cuda.stream()
        a = cuda.alloc(4096)
        host = cuda.pinned((32, 32), np.float32)
        back = cuda.pinned((32, 32), np.float32)
    host[...] = np.arange(1024, dtype=np.float32).reshape(32, 32)

    def copy_through_the_gpu() -> np.ndarray:  # ... used on another one
        with cuda.activate():
            cuda.htod(a, host, stream)
            cuda.dtoh(back, a, stream)
            cuda.synchronize(stream)
        return back.copy()

    np.testing.assert_array_equal(on_worker(copy_through_the_gpu), host)
    with cuda.activate():
        cuda.free(a)
        cuda.free_pinned(host)
        cuda.free_pinned(back)
        cuda.destroy_stream(stream)


def test_freed_memory_comes_back(cuda):
    size = 256 << 20
    with cuda.activate():
        before = cuda.free_bytes()
        ptr = cuda.alloc(size)
        held = before - cuda.free_bytes()
        cuda.free(ptr)
        after = cuda.free_bytes()
    assert held >= size and abs(before - after) < (8 << 20), (before, held, after)
