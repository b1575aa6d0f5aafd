"""Run the project's TensorRT paths against one version of NVIDIA's real binding module; print a JSON report.

Started by test_real_bindings.py in a fresh interpreter per TensorRT version, with the `tensorrt_bindings`
wheel and placeholder engine libraries on the paths. `import tensorrt` gives the real module, except that
Builder, Runtime and OnnxParser (which need the engine libraries) are hand-written fakes held to the real
classes by strict_api.py. The fakes' behaviour is the documented one, kept minimal: the parser reads
I/O from the ONNX file and fails where told to (and, like TensorRT 10.x's LayerNormalization importer, in
a strongly typed 10.x network: onnx-tensorrt onnxOpImporters.cpp release/10.1-GA + NvInfer.h release/10.3),
the builder records what it was asked for in the "engine", deserialization returns None for bytes it did
not write, and an execution context computes the graph with ONNX Runtime on fake device memory, queued on the
stream it is given. They can also fail the ways the real API may: `create_timing_cache` raising on a corrupt
cache, `set_timing_cache` returning False on a mismatched one, `get_timing_cache` returning None, a build
returning None, I/O of any TensorRT type (INT64/BOOL through the real `trt.nptype`, BF16 that it refuses),
shape-tensor I/O, a kernel that blocks until released.

    python bindings_probe.py '{"act": "<package>", "work": "<dir>"}'
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

import fake_gpu
import numpy as np
import onnx
import strict_api
import tensorrt_bindings as real

FAIL_OPS: set[str] = set()  # op types the fake parser refuses (scenario "parser_fails")
FAKE = {"get_timing_cache_none": False, "build_none": False}  # failure modes the scenarios switch on
LOGGERS: list[Any] = []  # every logger given to a Builder, OnnxParser or Runtime
GATE: dict[str, threading.Event] = {}  # "entered"/"release": a kernel that waits inside execute (scenario "lock")
DTYPES = {onnx.TensorProto.FLOAT: "FLOAT", onnx.TensorProto.FLOAT16: "HALF", onnx.TensorProto.INT64: "INT64",
          onnx.TensorProto.INT32: "INT32", onnx.TensorProto.BOOL: "BOOL", onnx.TensorProto.BFLOAT16: "BF16"}


class FakeTensor:
    def __init__(self, name: str, shape: list[int]) -> None:
        self.name = name
        self.shape = real.Dims(shape)


class FakeNetwork:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.inputs: list[Any] = []
        self.io: list[dict[str, Any]] = []
        self.onnx = ""

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, index: int) -> Any:
        return self.inputs[index]

    @property
    def strongly_typed(self) -> bool:
        if strict_api_version() >= (11, 0):
            return True  # NvInfer.h release/11.0: always strongly typed
        return bool(self.flags & (1 << int(real.NetworkDefinitionCreationFlag.STRONGLY_TYPED)))


class FakeParserError:
    def __init__(self, desc: str, node: int, node_name: str) -> None:
        self._desc, self._node, self._name = desc, node, node_name

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]


class FakeParser:
    def __init__(self, network: Any, logger: Any) -> None:
        LOGGERS.append(logger)
        self._network = network._impl
        self._errors: list[Any] = []

    def parse_from_file(self, model: str) -> bool:
        graph = onnx.load(model).graph
        for i, node in enumerate(graph.node):
            if node.op_type in FAIL_OPS:
                self._errors.append(API.wrap("ParserError", FakeParserError(f"{node.op_type} refused", i, node.name)))
            # 10.x's importer calls setComputePrecision (rejected when strongly typed); 11.0's uses addNormalizationV2
            if node.op_type == "LayerNormalization" and self._network.strongly_typed and strict_api_version() < (11,):
                self._errors.append(API.wrap("ParserError", FakeParserError(
                    "setComputePrecision is rejected by strongly typed networks", i, node.name)))
        if self._errors:
            return False
        initializers = {t.name for t in graph.initializer}
        net = self._network
        net.onnx = model
        net.inputs = [API.wrap("ITensor", FakeTensor(v.name, _dims(v))) for v in graph.input if v.name not in initializers]
        net.io = [{"name": v.name, "input": kind == "in", "shape": _dims(v),
                   "dtype": DTYPES[v.type.tensor_type.elem_type]}
                  for kind, values in (("in", graph.input), ("out", graph.output)) for v in values
                  if v.name not in initializers]
        return True

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> Any:
        return self._errors[index]


class FakeHostMemory:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def __bytes__(self) -> bytes:
        return self._data


class FakeTimingCache:
    """Valid caches are what `serialize` wrote: "+" bytes. b"mismatch..." stands for another device's cache."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.mismatch = data.startswith(b"mismatch")

    def serialize(self) -> Any:
        return API.wrap("IHostMemory", FakeHostMemory(self.data + b"+"))


class FakeConfig:
    def __init__(self) -> None:
        self.flags = {real.BuilderFlag.TF32}  # "Enabled by default" (NvInfer.h, BuilderFlag::kTF32)
        self.pools: dict[str, int] = {}
        self.cache: Any = None
        self.progress_monitor: Any = None

    def set_flag(self, flag: Any) -> None:
        self.flags.add(flag)

    def clear_flag(self, flag: Any) -> None:
        self.flags.discard(flag)

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self.pools[str(pool)] = pool_size

    def create_timing_cache(self, serialized_timing_cache: bytes) -> Any:
        data = bytes(serialized_timing_cache)
        if data.strip(b"+") and not data.startswith(b"mismatch"):
            raise RuntimeError("Could not deserialize the timing cache (test fake: corrupt data)")
        return API.wrap("ITimingCache", FakeTimingCache(data))

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        if cache._impl.mismatch and not ignore_mismatch:
            return False  # "a cache created on another device or TensorRT version" is refused
        self.cache = cache
        return True

    def get_timing_cache(self) -> Any:
        return None if FAKE["get_timing_cache_none"] else self.cache


class FakeBuilder:
    def __init__(self, logger: Any) -> None:
        LOGGERS.append(logger)

    def create_network(self, flags: int = 0) -> Any:
        return API.wrap("INetworkDefinition", FakeNetwork(flags))

    def create_builder_config(self) -> Any:
        return API.wrap("IBuilderConfig", FakeConfig())

    def build_serialized_network(self, network: Any, config: Any) -> Any:
        net, cfg = network._impl, config._impl
        if FAKE["build_none"]:
            return None  # "None if the build failed" (the binding's docstring)
        monitor = cfg.progress_monitor
        monitor.phase_start("Building engine", None, 2)
        for step in range(2):
            monitor.step_complete("Building engine", step)
        monitor.phase_finish("Building engine")
        payload = {"fake_engine": True, "onnx": net.onnx, "io": net.io, "network_flags": net.flags,
                   "strongly_typed": net.strongly_typed, "tf32": real.BuilderFlag.TF32 in cfg.flags,
                   "fp16_flag": any(str(f).endswith(".FP16") for f in cfg.flags), "pools": cfg.pools,
                   "timing_cache": len(cfg.cache._impl.data) if cfg.cache is not None else -1}
        return API.wrap("IHostMemory", FakeHostMemory(json.dumps(payload).encode()))


class FakeContext:
    """Computes the engine's ONNX graph with ONNX Runtime on the fake device memory it was pointed at."""

    def __init__(self, engine: "FakeEngine") -> None:
        self._engine = engine
        self._addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = memory
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        import onnxruntime as ort

        e = self._engine
        if stream_handle not in fake_gpu.STREAMS:
            return False  # not a live stream

        def kernel() -> None:  # runs when the stream is synchronized, after the copies queued before it
            if "release" in GATE:
                GATE["entered"].set()
                GATE["release"].wait()
            if e.session is None:
                e.session = ort.InferenceSession(e.payload["onnx"], providers=["CPUExecutionProvider"])
            feeds = {t["name"]: fake_gpu.read(self._addresses[t["name"]], tuple(t["shape"]), e.nptype(t["name"]))
                     for t in e.payload["io"] if t["input"]}
            outputs = [t["name"] for t in e.payload["io"] if not t["input"]]
            for name, value in zip(outputs, e.session.run(outputs, feeds)):
                fake_gpu.write(self._addresses[name], np.asarray(value, e.nptype(name)))

        fake_gpu.enqueue(stream_handle, kernel)
        return True


class FakeEngine:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.session: Any = None

    @property
    def num_io_tensors(self) -> int:
        return len(self.payload["io"])

    def get_tensor_name(self, index: int) -> str:
        return self.payload["io"][index]["name"]

    def _tensor(self, name: str) -> dict[str, Any]:
        return next(t for t in self.payload["io"] if t["name"] == name)

    def get_tensor_mode(self, name: str) -> Any:
        return real.TensorIOMode.INPUT if self._tensor(name)["input"] else real.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> Any:
        return real.Dims(self._tensor(name)["shape"])

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(real.DataType, self._tensor(name).get("dtype", "FLOAT"))

    def nptype(self, name: str) -> Any:
        return real.nptype(self.get_tensor_dtype(name))

    def is_shape_inference_io(self, name: str) -> bool:
        return bool(self._tensor(name).get("shape_io", False))

    def create_execution_context(self, *args: Any) -> Any:
        return API.wrap("IExecutionContext", FakeContext(self))


class FakeRuntime:
    def __init__(self, logger: Any) -> None:
        LOGGERS.append(logger)

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> Any:
        try:
            payload = json.loads(bytes(serialized_engine))
        except ValueError:
            return None  # "None if it could not be deserialized" (the binding's docstring)
        return API.wrap("ICudaEngine", FakeEngine(payload))


API = strict_api.StrictApi(real, {"Builder": FakeBuilder, "Runtime": FakeRuntime, "OnnxParser": FakeParser})


def strict_api_version() -> tuple[int, ...]:
    from edge.runtime.backends.engine_cache import version_tuple
    return version_tuple(real.__version__)


sys.modules["tensorrt"] = API.module
sys.modules["cuda"] = None  # type: ignore[assignment]  # device memory: HostMemory, or the pycuda stub

from edge.runtime.backends import cuda_memory as cuda_memory_module  # noqa: E402

cuda_memory_module.LIBRARIES["cuda-python"] = fake_gpu.HostMemory  # stands for cuda-python on a GPU


def _captured_log() -> list[str]:
    """The messages logged by the backends from now on (a list that fills as they come)."""
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("edge.runtime.backends").addHandler(handler)
    return records


def edge_cli(*args: str) -> tuple[int, str]:
    from edge.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        code = main(list(args))
    return code, err.getvalue()


def engine_payload(folder: Path, graph: str) -> dict[str, Any]:
    return json.loads((folder / f"{graph}.engine").read_bytes())


def engine_folder(package: Path, precision: str, root: Path | None = None) -> Path:
    from edge.runtime.backends.engine_cache import builder_flags  # noqa: F401  (the folder name does not hold flags)
    return (root or package / "engines") / f"trt{real.__version__}_test-gpu_sm87_{precision}"


def scenario_build_and_run(ctx: dict[str, Any]) -> dict[str, Any]:
    import edge
    from edge.runtime.backends.tensorrt import TensorRTBackend
    from edge.runtime.package import load_package
    from edge.runtime.validation import check_package

    package = Path(ctx["act"])
    facts: dict[str, Any] = {}
    for precision in ("fp32", "fp16"):
        code, out = edge_cli("build", str(package), *(["--fp16"] if precision == "fp16" else []))
        payload = engine_payload(engine_folder(package, precision), "act")
        results = check_package(load_package(package), TensorRTBackend(precision=precision))
        facts[precision] = {"exit": code, "log": out[-600:], "onnx": str(Path(payload["onnx"]).relative_to(package)),
                            **{k: payload[k] for k in ("network_flags", "strongly_typed", "tf32", "fp16_flag")},
                            "check_ok": all(r.ok for r in results),
                            "worst": max(r.max_abs_error for r in results)}
    manifest = (package / "manifest.json").read_text()
    old = json.loads(manifest)
    del old["fp16_preflight"]["range_headroom"]  # a record from before the range screen
    (package / "manifest.json").write_text(json.dumps(old))
    try:
        facts["old_preflight"] = edge_cli("build", str(package), "--fp16")[1]
    finally:
        (package / "manifest.json").write_text(manifest)
    code, out = edge_cli("build", str(package))
    facts["again"] = {"exit": code, "log": out}
    code, out = edge_cli("build", str(package), "--workspace-mb", "256")
    facts["workspace"] = {"exit": code, "log": out}
    code, out = edge_cli("build", str(package), "--workspace-mb", "256", "--rebuild")
    payload = engine_payload(engine_folder(package, "fp32"), "act")
    facts["workspace_rebuild"] = {"exit": code, "pools": payload["pools"], "timing_cache": payload["timing_cache"]}
    policy = edge.load_policy(package)
    observation = {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32)
                   for i in policy.package.manifest.inputs}
    facts["auto"] = {"describe": policy.backend.describe(), "action_shape": list(policy.select_action(observation).shape),
                     "action_dim": policy.package.manifest.action.dim}
    return facts


def scenario_engine_dir(ctx: dict[str, Any]) -> dict[str, Any]:
    import edge
    from edge.runtime.backends import select_backend
    from edge.runtime.package import load_package

    package, root = Path(ctx["act"]), Path(ctx["work"]) / "engine-dir"
    code, out = edge_cli("build", str(package), "--engine-dir", str(root))
    facts = {"exit": code, "log": out, "built": (engine_folder(package, "fp32", root) / "act.engine").is_file()}
    facts["given"] = edge.load_policy(package, engine_dir=root).backend.describe()
    os.environ["EDGE_ENGINE_DIR"] = str(root)
    try:
        facts["env"] = select_backend(load_package(package))[0].name
    finally:
        del os.environ["EDGE_ENGINE_DIR"]
    return facts


def scenario_deserialize_fails(ctx: dict[str, Any]) -> dict[str, Any]:
    from edge.errors import BackendError
    from edge.runtime.backends import AutoBackend
    from edge.runtime.backends.engine_cache import BuildOptions, EngineKey, write_engine
    from edge.runtime.package import load_package

    package = Path(ctx["act"])
    folder = engine_folder(package, "fp32")
    meta = json.loads((folder / "act.json").read_text())
    for sub in ("fp16",):  # leave only FP32 engines, the ones corrupted below
        for f in engine_folder(package, sub).glob("*"):
            f.unlink()
    write_engine(package / "engines", EngineKey(**meta["key"]), "act", b"not an engine",
                 BuildOptions(**meta["options"]), {})  # "fresh" on disk, but TensorRT cannot read it
    records = _captured_log()
    logging.getLogger("edge.runtime.backends").setLevel(logging.INFO)
    auto = AutoBackend()
    session = auto.load(load_package(package), "act")
    facts = {"describe": auto.describe(), "log": records, "session": type(session).__name__}
    from edge.runtime.backends.tensorrt import TensorRTBackend
    try:
        TensorRTBackend(precision="fp32").load(load_package(package), "act")
        facts["direct"] = "loaded"
    except BackendError as exc:
        facts["direct"] = str(exc)
    return facts


def scenario_parser_fails(ctx: dict[str, Any]) -> dict[str, Any]:
    from edge.errors import BackendError
    from edge.runtime.backends.engine_cache import BuildOptions
    from edge.runtime.backends.trt_builder import EngineBuilder

    package, work = Path(ctx["act"]), Path(ctx["work"])
    builder = EngineBuilder(API.module, report=lambda _m: None)
    facts = {}
    FAIL_OPS.add("MatMul")
    try:
        builder.build(package / "act.onnx", "fp32", work / "t.cache", BuildOptions())
        facts["refused"] = "built"
    except BackendError as exc:
        facts["refused"] = str(exc)
    finally:
        FAIL_OPS.clear()
    for name, path in (("fp32_onnx_typed", package / "act.onnx"), ("fp16_onnx_typed", package / "fp16" / "act.onnx")):
        try:  # FP16 engines are strongly typed: the FP32 graph's LayerNormalization breaks that on 10.x
            builder.build(path, "fp16", work / "t.cache", BuildOptions())
            facts[name] = "built"
        except BackendError as exc:
            facts[name] = str(exc)
    dynamic = onnx.load(str(package / "act.onnx"))
    dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(dynamic, str(work / "dynamic.onnx"))
    try:
        builder.build(work / "dynamic.onnx", "fp32", work / "t.cache", BuildOptions())
        facts["dynamic"] = "built"
    except BackendError as exc:
        facts["dynamic"] = str(exc)
    return facts


def _tiny_session(work: Path, memory: Any, model: Any = None, spec: Any = None) -> Any:
    """An engine for out = 2 * x + y on (1, 3) float32 tensors (or for `model` with `spec`), through the real
    builder and session code."""
    from onnx import TensorProto, helper

    from edge.runtime.backends.engine_cache import BuildOptions
    from edge.runtime.backends.tensorrt import shared_logger
    from edge.runtime.backends.trt_builder import EngineBuilder
    from edge.runtime.backends.trt_session import EngineSession
    from edge.runtime.package import GraphSpec, TensorSpec

    if model is None:
        two = onnx.numpy_helper.from_array(np.array([2.0], np.float32), "two")
        vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("x", "y", "out")]
        graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["x2"]),
                                   helper.make_node("Add", ["x2", "y"], ["out"])], "g", vi[:2], vi[2:], [two])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        spec = GraphSpec("tiny.onnx", "0", [TensorSpec("x", [1, 3]), TensorSpec("y", [1, 3])],
                         [TensorSpec("out", [1, 3])], 17)
    path = work / "tiny.onnx"
    onnx.save(model, str(path))
    data = EngineBuilder(API.module, report=lambda _m: None).build(path, "fp32", work / "tiny.cache",
                                                                   BuildOptions()).engine
    engine = API.module.Runtime(shared_logger(API.module)).deserialize_cuda_engine(data)
    return EngineSession("tiny", spec, API.module, engine, memory)


def scenario_session(ctx: dict[str, Any]) -> dict[str, Any]:
    from edge.errors import BackendError

    work = Path(ctx["work"])
    memory = fake_gpu.HostMemory()
    before = (dict(fake_gpu.DEVICE), set(fake_gpu.PINNED))
    x, y = np.array([[1, 2, 3]], np.float32), np.array([[10, 20, 30]], np.float32)
    facts: dict[str, Any] = {}
    with _tiny_session(work, memory) as a, _tiny_session(work, memory) as b:
        facts["run"] = a.run({"x": x, "y": y})["out"].tolist()
        facts["names"] = [a.input_names, a.output_names]
        facts["chained"] = b.run({"x": np.array(facts["run"], np.float32), "y": y})["out"].tolist()
        facts["held"] = len(fake_gpu.DEVICE) - len(before[0])
    facts["freed"] = dict(fake_gpu.DEVICE) == before[0] and set(fake_gpu.PINNED) == before[1]
    try:
        a.run({"x": x, "y": y})
        facts["after_close"] = "ran"
    except BackendError as exc:
        facts["after_close"] = str(exc)
    a.close()  # idempotent
    return facts


def _run_on_a_thread(session: Any, feeds: dict[str, np.ndarray]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start `session.run(feeds)` on a new thread; the dict gets "out" (the output as a list) or "error"."""
    result: dict[str, Any] = {}

    def worker() -> None:
        try:
            result["out"] = session.run(feeds)["out"].tolist()
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=worker)
    thread.start()
    return thread, result


def scenario_worker_thread(ctx: dict[str, Any]) -> dict[str, Any]:
    """A session made on this thread with the pycuda stub (per-thread contexts) runs on a worker thread."""
    from edge.runtime.backends.cuda_memory import cuda_memory

    work = Path(ctx["work"])
    memory = cuda_memory("pycuda")
    session = _tiny_session(work, memory)
    x, y = np.array([[1, 2, 3]], np.float32), np.array([[10, 20, 30]], np.float32)
    thread, result = _run_on_a_thread(session, {"x": x, "y": y})
    thread.join()
    closer = threading.Thread(target=session.close)  # closed from yet another thread
    closer.start()
    closer.join()
    result["freed"] = session.closed and not fake_gpu.DEVICE and not fake_gpu.PINNED
    result["library"] = memory.library
    return result


def scenario_dynamic_engine(ctx: dict[str, Any]) -> dict[str, Any]:
    from edge.errors import BackendError
    from edge.runtime.backends.trt_session import EngineSession
    from edge.runtime.package import GraphSpec, TensorSpec

    payload = {"onnx": "", "io": [{"name": "x", "input": True, "shape": [-1, 3]},
                                  {"name": "out", "input": False, "shape": [-1, 3]}]}
    from edge.runtime.backends.tensorrt import shared_logger
    engine = API.module.Runtime(shared_logger(API.module)).deserialize_cuda_engine(json.dumps(payload).encode())
    spec = GraphSpec("d.onnx", "0", [TensorSpec("x", [1, 3])], [TensorSpec("out", [1, 3])], 17)
    try:
        EngineSession("d", spec, API.module, engine, fake_gpu.HostMemory())
        return {"refused": "loaded"}
    except BackendError as exc:
        return {"refused": str(exc), "leaked": len(fake_gpu.DEVICE)}


def _error(call: Callable[[], Any]) -> str:
    """What `call` raised, as "Type: message"; "no error" if nothing."""
    try:
        call()
        return "no error"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def scenario_timing_cache(ctx: dict[str, Any]) -> dict[str, Any]:
    """`edge build --rebuild` with a corrupt, a mismatched and no returned timing cache, a failed engine write and
    a failed build: one message each, and the cache written only after the engine."""
    import edge.runtime.backends.trt_builder as trt_builder
    from edge.runtime.package import load_package

    package = Path(ctx["act"])
    cache = engine_folder(package, "fp32") / "timing.cache"
    facts: dict[str, Any] = {}
    for case, content in (("corrupt", b"\x00garbage"), ("mismatch", b"mismatch from another GPU")):
        cache.write_bytes(content)
        code, out = edge_cli("build", str(package), "--rebuild")
        facts[case] = {"exit": code, "messages": [line for line in out.splitlines() if "timing cache" in line],
                       "after": cache.read_bytes().decode(errors="replace")}
    cache.write_bytes(b"+++")
    FAKE["get_timing_cache_none"] = True
    try:
        code, out = edge_cli("build", str(package), "--rebuild")
    finally:
        FAKE["get_timing_cache_none"] = False
    facts["none"] = {"exit": code, "messages": [line for line in out.splitlines() if "timing cache" in line],
                     "after": cache.read_bytes().decode()}
    cache.unlink()
    original = trt_builder.write_engine

    def disk_full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(28, "No space left on device (test)")

    trt_builder.write_engine = disk_full
    try:
        facts["engine_write_fails"] = {"error": _error(lambda: trt_builder.build_engines(
            load_package(package), "fp32", rebuild=True, report=lambda _m: None)), "cache_written": cache.exists()}
    finally:
        trt_builder.write_engine = original
    FAKE["build_none"] = True
    try:
        code, out = edge_cli("build", str(package), "--rebuild")
    finally:
        FAKE["build_none"] = False
    facts["build_none"] = {"exit": code, "log": out[-400:], "cache_written": cache.exists()}
    code, out = edge_cli("build", str(package), "--rebuild")  # leaves a good engine and cache for what follows
    facts["rebuilt"] = {"exit": code, "cache": cache.read_bytes().decode()}
    return facts


def _fresh_engine_with(package: Path, payload: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
    """Store `payload` changed by `change` as the FP32 act engine, fresh (the key still matches)."""
    import copy

    from edge.runtime.backends.engine_cache import BuildOptions, EngineKey, write_engine

    meta = json.loads((engine_folder(package, "fp32") / "act.json").read_text())
    payload = copy.deepcopy(payload)
    change(payload)
    write_engine(package / "engines", EngineKey(**meta["key"]), "act", json.dumps(payload).encode(),
                 BuildOptions(**meta["options"]), {})


def scenario_fallback(ctx: dict[str, Any]) -> dict[str, Any]:
    """`backend="auto"` on engines that deserialize but cannot run here: BF16 I/O (trt.nptype raises TypeError), I/O
    names that differ from the manifest (PackageError), a CUDA binding's own error (pycuda raises its MemoryError):
    ONNX Runtime, with everything TensorRT held given back."""
    from edge.runtime.backends import AutoBackend
    from edge.runtime.backends.tensorrt import TensorRTBackend
    from edge.runtime.package import load_package

    package = Path(ctx["act"])
    for f in engine_folder(package, "fp16").glob("*"):
        f.unlink()  # only FP32 engines, changed below
    code, _ = edge_cli("build", str(package), "--rebuild")
    assert code == 0
    records = _captured_log()
    facts: dict[str, Any] = {}
    held = len(fake_gpu.DEVICE)
    session = TensorRTBackend(precision="fp32")
    loaded = session.load(load_package(package), "act")
    session.close()  # the backend closes the session it made, which nobody closed
    facts["tracked"] = {"session_closed": loaded.closed, "freed": len(fake_gpu.DEVICE) == held}

    def bf16(payload: dict[str, Any]) -> None:
        payload["io"][-1]["dtype"] = "BF16"

    def renamed(payload: dict[str, Any]) -> None:
        payload["io"][-1]["name"] = "renamed_output"

    def unchanged(payload: dict[str, Any]) -> None:
        pass

    original = engine_payload(engine_folder(package, "fp32"), "act")
    alloc = fake_gpu.HostMemory.alloc
    for case, change in (("bf16", bf16), ("renamed", renamed), ("cuda_error", unchanged)):
        _fresh_engine_with(package, original, change)
        if case == "cuda_error":
            def out_of_memory(self: Any, nbytes: int) -> int:
                raise MemoryError("cuMemAlloc failed: out of memory (test)")
            fake_gpu.HostMemory.alloc = out_of_memory  # type: ignore[method-assign]
        records.clear()
        closed_before = len(fake_gpu.CLOSED)
        auto = AutoBackend()
        try:
            facts[case] = {"session": type(auto.load(load_package(package), "act")).__name__,
                           "describe": auto.describe(), "log": list(records),
                           "freed": len(fake_gpu.DEVICE) == held, "adapter_closed": len(fake_gpu.CLOSED) > closed_before}
        except Exception as exc:
            facts[case] = {"session": f"{type(exc).__name__}: {exc}"}
        finally:
            fake_gpu.HostMemory.alloc = alloc  # type: ignore[method-assign]
    code, _ = edge_cli("build", str(package), "--rebuild")  # a good engine again
    assert code == 0
    return facts


def scenario_lifetimes(ctx: dict[str, Any]) -> dict[str, Any]:
    """pycuda after close, a free that fails, feeds that miss an input, close() while a run is inside TensorRT,
    shape-tensor I/O, INT64/BOOL I/O, one logger."""
    from onnx import TensorProto, helper

    from edge.runtime.backends.cuda_memory import cuda_memory
    from edge.runtime.backends.tensorrt import shared_logger
    from edge.runtime.backends.trt_session import EngineSession
    from edge.runtime.package import GraphSpec, TensorSpec

    work = Path(ctx["work"])
    x, y = np.array([[1, 2, 3]], np.float32), np.array([[10, 20, 30]], np.float32)
    facts: dict[str, Any] = {}
    pycuda = cuda_memory("pycuda")
    facts["pycuda_gpu"] = list(vars(pycuda.gpu()).values())
    pycuda.close()
    facts["pycuda_after_close"] = _error(lambda: pycuda.activate().__enter__())

    class FailingFree(fake_gpu.HostMemory):
        failed = False

        def free(self, ptr: int) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("cudaFree failed (test)")
            super().free(ptr)

    device, pinned, streams = len(fake_gpu.DEVICE), len(fake_gpu.PINNED), len(fake_gpu.STREAMS)
    session = _tiny_session(work, FailingFree())
    facts["missing_feed"] = _error(lambda: session.run({"x": x}))
    facts["unknown_feed"] = _error(lambda: session.run({"x": x, "y": y, "z": y}))
    facts["close_error"] = _error(session.close)
    facts["after_failed_free"] = {"closed": session.closed, "device_left": len(fake_gpu.DEVICE) - device,
                                  "pinned_left": len(fake_gpu.PINNED) - pinned,
                                  "streams_left": len(fake_gpu.STREAMS) - streams}

    records = _captured_log()
    session = _tiny_session(work, fake_gpu.HostMemory())
    session.close_wait_s = 0.05
    held = len(fake_gpu.DEVICE)
    GATE.update(entered=threading.Event(), release=threading.Event())
    thread, result = _run_on_a_thread(session, {"x": x, "y": y})
    GATE["entered"].wait(30)
    session.close()  # returns although the run holds the session
    facts["lock"] = {"closed": session.closed, "kept_buffers": len(fake_gpu.DEVICE) == held,
                     "warning": [r for r in records if "leaked" in r]}
    GATE["release"].set()
    thread.join(30)
    GATE.clear()
    facts["lock"]["run"] = result.get("out", result.get("error"))
    facts["lock"]["after"] = _error(lambda: session.run({"x": x, "y": y}))

    payload = {"onnx": "", "io": [{"name": "x", "input": True, "shape": [1, 3], "shape_io": True},
                                  {"name": "out", "input": False, "shape": [1, 3]}]}
    engine = API.module.Runtime(shared_logger(API.module)).deserialize_cuda_engine(json.dumps(payload).encode())
    spec = GraphSpec("s.onnx", "0", [TensorSpec("x", [1, 3])], [TensorSpec("out", [1, 3])], 17)
    device = len(fake_gpu.DEVICE)
    facts["shape_io"] = {"error": _error(lambda: EngineSession("s", spec, API.module, engine, fake_gpu.HostMemory())),
                         "leaked": len(fake_gpu.DEVICE) - device}

    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3]),
          helper.make_tensor_value_info("k", TensorProto.INT64, [1, 3]),
          helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3]),
          helper.make_tensor_value_info("positive", TensorProto.BOOL, [1, 3])]
    graph = helper.make_graph([helper.make_node("Cast", ["k"], ["kf"], to=TensorProto.FLOAT),
                               helper.make_node("Mul", ["x", "kf"], ["out"]),
                               helper.make_node("Greater", ["out", "zero"], ["positive"])], "typed", vi[:2], vi[2:],
                              [onnx.numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    spec = GraphSpec("typed.onnx", "0", [TensorSpec("x", [1, 3]), TensorSpec("k", [1, 3])],
                     [TensorSpec("out", [1, 3]), TensorSpec("positive", [1, 3])], 17)
    with _tiny_session(work, fake_gpu.HostMemory(), model, spec) as typed:
        out = typed.run({"x": np.array([[1, -2, 3]], np.float32), "k": np.array([[4, 5, -6]], np.int64)})
        facts["typed"] = {"out": out["out"].tolist(), "positive": out["positive"].tolist(),
                          "dtypes": [str(out["out"].dtype), str(out["positive"].dtype)]}
    facts["loggers"] = len({id(logger) for logger in LOGGERS})
    return facts


SCENARIOS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "session": scenario_session, "worker_thread": scenario_worker_thread, "dynamic_engine": scenario_dynamic_engine,
    "build_and_run": scenario_build_and_run, "engine_dir": scenario_engine_dir, "parser_fails": scenario_parser_fails,
    "timing_cache": scenario_timing_cache, "fallback": scenario_fallback, "lifetimes": scenario_lifetimes,
    "deserialize_fails": scenario_deserialize_fails,
}


def main() -> None:
    ctx = json.loads(sys.argv[1])
    report: dict[str, Any] = {"version": real.__version__, "scenarios": {}}
    for name, scenario in SCENARIOS.items():
        try:
            report["scenarios"][name] = {"ok": True, **scenario(ctx)}
        except Exception as exc:  # reported per scenario; the test names the failing one
            report["scenarios"][name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                                         "traceback": traceback.format_exc()[-3000:]}
    report["used"] = sorted(strict_api.USED)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
