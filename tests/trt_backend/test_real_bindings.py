"""The TensorRT path against NVIDIA's real Python bindings of TensorRT 10.3 (JetPack 6), 10.12 and 11.4.

One fresh interpreter per version runs bindings_probe.py: the project's builder, engine session, backend
and `edge build` against the real module (classes, method signatures, enum values), with only what
needs the engine libraries or a GPU hand-written (see strict_api.py, fake_gpu.py, stubs/pycuda). Any
attribute, argument or keyword the code uses that a version lacks fails the scenario that used it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from real_bindings import BINDING_VERSIONS, CUDA_BINDINGS, REPO, cuda_bindings, tensorrt_bindings

from export.fp16.preflight import preflight


@pytest.fixture(scope="module", params=BINDING_VERSIONS)
def probe(request, export_fixture, tmp_path_factory) -> dict:
    env = tensorrt_bindings(request.param)
    work = tmp_path_factory.mktemp(f"trt{request.param}")
    act = shutil.copytree(export_fixture("act_env"), work / "act_env")
    preflight(act, steps=1, progress=lambda _m: None)  # the FP16 ONNX that FP16 engines are built from
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "trt_backend" / "bindings_probe.py"),
                           json.dumps({"act": str(act), "work": str(work)})],
                          cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["version"] == request.param
    return report


def scenario(probe: dict, name: str) -> dict:
    result = probe["scenarios"][name]
    assert result["ok"], f"TensorRT {probe['version']} {name}: {result['error']}\n{result['traceback']}"
    return result


def test_real_enum_values():
    """The facts the code relies on, read from the real modules (not from the code under test)."""
    script = ("import tensorrt_bindings as t, json; print(json.dumps([t.__version__, "
              "int(t.NetworkDefinitionCreationFlag.STRONGLY_TYPED), hasattr(t.BuilderFlag, 'FP16'), "
              "hasattr(t.BuilderFlag, 'TF32')]))")
    seen = {}
    for version in BINDING_VERSIONS:
        env = tensorrt_bindings(version)
        out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=60, check=True).stdout
        seen[version] = json.loads(out)[1:]
    assert seen == {"10.3.0": [1, True, True], "10.12.0.36": [1, True, True], "11.4.0.106": [0, False, True]}


def test_build_and_run_under_the_precision_rule(probe):
    facts = scenario(probe, "build_and_run")
    eleven = probe["version"].startswith("11.")
    fp32, fp16 = facts["fp32"], facts["fp16"]
    assert fp32["exit"] == 0 and fp16["exit"] == 0, (fp32["log"], fp16["log"])
    assert fp32["onnx"] == "act.onnx" and fp16["onnx"] == "fp16/act.onnx"  # FP16: what the preflight checked
    assert fp16["strongly_typed"] and not fp16["fp16_flag"] and not fp32["fp16_flag"]
    assert fp32["strongly_typed"] == eleven  # 11.x is always strongly typed, 10.x FP32 stays weakly typed
    assert fp16["network_flags"] == (0 if eleven else 2) and fp32["network_flags"] == 0  # 1 << STRONGLY_TYPED(1)
    assert not fp32["tf32"] and not fp16["tf32"]
    assert fp32["check_ok"] and fp16["check_ok"]  # the engine session feeds and reads the right buffers
    assert "predates the FP16 range screen" in facts["old_preflight"] and "predates" not in fp16["log"]
    assert "act: up to date" in facts["again"]["log"] and facts["again"]["exit"] == 0
    assert facts["workspace"]["exit"] == 2 and "'workspace_mb': 256" in facts["workspace"]["log"]
    assert facts["workspace_rebuild"]["exit"] == 0
    assert facts["workspace_rebuild"]["pools"] == {"MemoryPoolType.WORKSPACE": 256 << 20}
    assert facts["workspace_rebuild"]["timing_cache"] == 1  # the first build's timing cache was loaded
    assert facts["auto"]["describe"].startswith(f"auto -> tensorrt {probe['version']}")
    assert facts["auto"]["action_shape"] == [facts["auto"]["action_dim"]]


def test_engine_dir_is_where_the_runtime_looks(probe):
    facts = scenario(probe, "engine_dir")
    assert facts["exit"] == 0 and facts["built"] and "EDGE_ENGINE_DIR=" in facts["log"]
    assert facts["given"].startswith("auto -> tensorrt") and facts["env"] == "tensorrt"


def test_failed_deserialization_falls_back_with_a_message(probe):
    facts = scenario(probe, "deserialize_fails")
    assert facts["describe"].startswith("auto -> onnxruntime") and facts["session"] == "OrtSession"
    assert any("could not deserialize" in line and "using ONNX Runtime" in line for line in facts["log"])
    assert "could not deserialize" in facts["direct"] and "--rebuild" in facts["direct"]


def test_parser_errors_layer_norm_and_dynamic_shapes(probe):
    facts = scenario(probe, "parser_fails")
    assert "could not parse" in facts["refused"] and "MatMul refused" in facts["refused"]
    # a strongly typed 10.x network cannot take the FP32 graph's LayerNormalization; the FP16 graph has none
    assert facts["fp16_onnx_typed"] == "built"
    assert ("setComputePrecision" in facts["fp32_onnx_typed"]) != probe["version"].startswith("11.")
    assert "dynamic shape" in facts["dynamic"]


def test_engine_session_lifecycle(probe):
    facts = scenario(probe, "session")
    assert facts["run"] == [[12.0, 24.0, 36.0]] and facts["names"] == [["x", "y"], ["out"]]
    assert facts["chained"] == [[34.0, 68.0, 102.0]]
    assert facts["held"] == 6 and facts["freed"]  # 3 + 3 tensor buffers, all given back
    assert "session is closed" in facts["after_close"]


def test_session_runs_on_a_worker_thread_with_pycuda(probe):
    facts = scenario(probe, "worker_thread")
    assert facts.get("error") is None and facts["out"] == [[12.0, 24.0, 36.0]]
    assert facts["library"] == "pycuda" and facts["freed"]


def test_dynamic_engine_is_refused_at_load(probe):
    facts = scenario(probe, "dynamic_engine")
    assert "dynamic shapes" in facts["refused"] and facts["leaked"] == 0


def test_timing_cache_rejected_replaced_and_written_after_the_engine(probe):
    facts = scenario(probe, "timing_cache")
    for case, why in (("corrupt", "unreadable"), ("mismatch", "another TensorRT version or device")):
        assert facts[case]["exit"] == 0, facts[case]
        assert len(facts[case]["messages"]) == 1 and why in facts[case]["messages"][0], facts[case]
        assert set(facts[case]["after"]) == {"+"}  # replaced by the cache TensorRT returned from an empty one
    assert facts["none"]["exit"] == 0 and facts["none"]["after"] == "+++"  # get_timing_cache() None: left alone
    assert len(facts["none"]["messages"]) == 1 and "no timing cache" in facts["none"]["messages"][0]
    assert "No space left" in facts["engine_write_fails"]["error"] and not facts["engine_write_fails"]["cache_written"]
    assert facts["build_none"]["exit"] != 0 and "failed to build" in facts["build_none"]["log"]
    assert not facts["build_none"]["cache_written"]
    assert facts["rebuilt"]["exit"] == 0 and facts["rebuilt"]["cache"] == "+"


def test_auto_falls_back_on_any_engine_load_failure_and_closes_tensorrt(probe):
    facts = scenario(probe, "fallback")
    assert facts["tracked"] == {"session_closed": True, "freed": True}
    for case, why in (("bf16", "numpy cannot hold"), ("renamed", "renamed_output"),
                      ("cuda_error", "MemoryError: cuMemAlloc failed")):
        f = facts[case]
        assert f["session"] == "OrtSession" and f["describe"].startswith("auto -> onnxruntime"), f
        assert any(why in line and "closed the TensorRT backend" in line for line in f["log"]), f["log"]
        assert f["freed"] and f["adapter_closed"], f


def test_session_lifetimes(probe):
    facts = scenario(probe, "lifetimes")
    assert facts["pycuda_gpu"] == ["Test GPU", "8.7", 16, 8 << 30, "12.6", "12.6"]
    assert facts["pycuda_after_close"].startswith("BackendError: the CUDA adapter (pycuda) is closed")
    assert facts["missing_feed"].startswith("BackendError") and "missing ['y']" in facts["missing_feed"]
    assert facts["unknown_feed"].startswith("BackendError") and "unknown ['z']" in facts["unknown_feed"]
    assert facts["close_error"] == "RuntimeError: cudaFree failed (test)"
    assert facts["after_failed_free"] == {"closed": True, "device_left": 1, "pinned_left": 0, "streams_left": 0}
    lock = facts["lock"]
    assert lock["closed"] and lock["kept_buffers"] and len(lock["warning"]) == 1
    assert lock["run"] == [[12.0, 24.0, 36.0]]  # the run in progress finished on buffers close() left alone
    assert "session is closed" in lock["after"]
    assert "shape-tensor I/O ['x']" in facts["shape_io"]["error"] and facts["shape_io"]["leaked"] == 0
    assert facts["typed"] == {"out": [[4.0, -10.0, -18.0]], "positive": [[True, False, False]],
                              "dtypes": ["float32", "bool"]}
    assert facts["loggers"] == 1  # one trt.Logger for every Builder, OnnxParser and Runtime


def test_every_member_used_exists(probe):
    """The members exercised above (a failing lookup already failed its scenario); 11.x never saw FP16."""
    used = set(probe["used"])
    assert {"IBuilderConfig.clear_flag", "IBuilderConfig.progress_monitor=", "Builder.build_serialized_network",
            "OnnxParser.get_error", "ParserError.desc", "ICudaEngine.get_tensor_shape", "ICudaEngine.get_tensor_dtype",
            "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
            "Runtime.deserialize_cuda_engine", "INetworkDefinition.get_input", "ITensor.shape"} <= used


@pytest.mark.parametrize("major", sorted(CUDA_BINDINGS))
def test_cuda_python_adapter_against_the_real_runtime_module(major):
    """cuda-bindings 12.x (the JetPack 6 pin) and 13.x: the calls bind, the stream handle is read the supported way,
    and without a GPU the adapter fails with CUDA's own error name."""
    env = cuda_bindings(major)
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "trt_backend" / "cuda_probe.py")], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report["version"].startswith(f"{major}.")
    assert report["no_gpu"].startswith("no usable CUDA Python bindings (cuda-python: BackendError: CUDA runtime error "
                                       "in cudaGetDevice: cudaError")
    assert report["handle"] == 1234 and report["free_bytes"] == 1 << 30
    assert report["gpu"] == ["", "0.0", 0, 0, "12.6", "12.8"]  # cudaDeviceProp() defaults; the versions below
    assert len(report["calls"]) == 13
