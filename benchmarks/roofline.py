"""The machine's limits and a graph's work: sgemm throughput and read bandwidth measured now, FLOPs and weight bytes
counted from an ONNX file.

A policy's per-chunk limit is max(FLOPs / sgemm rate, weight bytes read / bandwidth): compute-bound or bound by
streaming its weights from memory, whichever is slower. Both rates are measured with ONNX Runtime's own kernels on
the thread count the runtime uses, in the run that times the model (the machine is shared and its speed drifts).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.graph_rewrites import static_shapes

MATMUL_N = 2048  # sgemm: (N x N) @ (N x N)
GEMV_BYTES = 256 << 20  # bandwidth: a 1 x K @ K x N product over a 256 MiB weight matrix (far beyond the caches)


@dataclass
class GraphWork:
    """One graph call: multiply-add FLOPs (MatMul, Gemm, Conv, ConvTranspose; 2 per MAC) and initializer bytes."""

    flops: float
    weight_bytes: int


@dataclass
class MachineLimits:
    threads: int
    sgemm_gflops: float  # ONNX Runtime MatMul, 2048^3, best of 5
    read_gbps: float  # best of ONNX Runtime's GEMV over 256 MiB of weights and a numpy streaming sum

    def limit_ms(self, flops: float, weight_bytes: float) -> float:
        return 1e3 * max(flops / (self.sgemm_gflops * 1e9), weight_bytes / (self.read_gbps * 1e9))


COUNTED = ("MatMul", "Gemm", "Conv", "ConvTranspose")


def graph_work(path: str | Path) -> GraphWork:
    """FLOPs and weight bytes of one call of the ONNX graph at `path` (static shapes, batch 1)."""
    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: list(i.dims) for i in g.initializer}
    nodes = [n for n in g.node if n.op_type in COUNTED]
    activations = {x for n in nodes for x in (*n.input[:2], n.output[0]) if x not in inits}
    shapes = {**static_shapes(model, activations), **inits}
    weight_bytes = sum(numpy_helper.to_array(i).nbytes for i in g.initializer)
    flops = 0.0
    for node in nodes:
        if node.op_type in ("MatMul", "Gemm"):
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            trans_a = any(at.name == "transA" and at.i for at in node.attribute)
            k = a[-2] if trans_a else a[-1]
            flops += 2.0 * float(np.prod(out)) * k
        elif node.op_type == "Conv":
            w, out = shapes[node.input[1]], shapes[node.output[0]]
            flops += 2.0 * float(np.prod(out)) * float(np.prod(w[1:]))  # C_in/group x kernel per output
        else:  # ConvTranspose: each input element scatters C_out/group x kernel
            x, w = shapes[node.input[0]], shapes[node.input[1]]
            flops += 2.0 * float(np.prod(x)) * float(np.prod(w[1:]))
    return GraphWork(flops, weight_bytes)


def probe_session(nodes: list, inits: list, inputs: list, outputs: list, threads: int):
    import onnxruntime as ort

    graph = helper.make_graph(nodes, "probe", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def best_seconds(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def float_value(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def sgemm_gflops(threads: int, n: int = MATMUL_N) -> float:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "w")
    s = probe_session([helper.make_node("MatMul", ["x", "w"], ["y"])], [w], [float_value("x", [n, n])],
                      [float_value("y", [n, n])], threads)
    x = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n ** 3 / best_seconds(lambda: s.run(None, {"x": x}), 5) / 1e9


def read_gbps(threads: int, nbytes: int = GEMV_BYTES) -> float:
    """Weight-streaming bandwidth: ONNX Runtime's 1-row MatMul (what a batch-1 layer does) and a threaded numpy sum."""
    k, n = 8192, nbytes // (4 * 8192)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((k, n), dtype=np.float32)
    s = probe_session([helper.make_node("MatMul", ["x", "w"], ["y"])], [numpy_helper.from_array(w, "w")],
                      [float_value("x", [1, k])], [float_value("y", [1, n])], threads)
    x = rng.standard_normal((1, k), dtype=np.float32)
    gemv = w.nbytes / best_seconds(lambda: s.run(None, {"x": x}), 10) / 1e9
    parts = np.array_split(w.reshape(-1), threads)

    def threaded_sum() -> None:
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]  # numpy releases the GIL
        for t in workers:
            t.start()
        for t in workers:
            t.join()

    numpy_sum = w.nbytes / best_seconds(threaded_sum, 5) / 1e9
    return max(gemv, numpy_sum)


def measure(threads: int) -> MachineLimits:
    return MachineLimits(threads, sgemm_gflops(threads), read_gbps(threads))
