"""Engine cache keys and stale-engine detection (no TensorRT needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.errors import BackendError
from edge.runtime.backends.cuda_memory import GpuInfo
from edge.runtime.backends.engine_cache import (
    BuildOptions,
    EngineKey,
    builder_flags,
    cache_root,
    candidate_versions,
    check_engine,
    check_version,
    engine_key,
    engine_source,
    write_engine,
)
from edge.runtime.package import load_package
from export.fp16.preflight import preflight

GPU = GpuInfo("Orin (nvgpu)", "8.7", 16, 64 * 10**9, "12.6", "12.6")  # 59.6 GiB reported


def test_key_directory_and_precision_rule():
    key = EngineKey("10.3.0.30", "Orin (nvgpu)", "8.7", "fp16", "ab" * 32, "strongly_typed,tf32_off")
    assert key.directory() == "trt10.3.0.30_orin-nvgpu_sm87_fp16"
    # one rule on every TensorRT >= 10.0: FP16 strongly typed, TF32 off; FP32 strongly typed only where 11 forces it
    for version in ("10.3.0.30", "10.12.0.36", "11.4.0.106"):
        assert builder_flags("fp16", version) == "strongly_typed,tf32_off"
    assert builder_flags("fp32", "10.3.0") == builder_flags("fp32", "10.12.0.36") == "tf32_off"
    assert builder_flags("fp32", "11.4.0.106") == "strongly_typed,tf32_off"
    check_version("10.0.1")
    with pytest.raises(BackendError, match="needs TensorRT >= 10.0"):
        check_version("8.6.1")


def test_engine_dir_from_the_environment(package_copy, tmp_path, monkeypatch):
    package = load_package(package_copy("act_env"))
    monkeypatch.delenv("EDGE_ENGINE_DIR", raising=False)
    assert cache_root(package) == package.path / "engines"
    monkeypatch.setenv("EDGE_ENGINE_DIR", str(tmp_path / "elsewhere"))
    assert cache_root(package) == tmp_path / "elsewhere" and cache_root(package, "given") == Path("given")


def test_fresh_missing_and_stale(package_copy):
    package = load_package(package_copy("act_env"))
    root = cache_root(package)
    key = engine_key(package, "act", "fp32", "10.3.0", GPU)
    assert key.onnx_sha256 == package.manifest.graphs["act"].sha256

    status = check_engine(root, key, "act")
    assert status.state == "missing" and "trt10.3.0_orin-nvgpu_sm87_fp32" in status.reason

    path = write_engine(root, key, "act", b"engine bytes", BuildOptions(), {"build_seconds": 1.0})
    assert path == root / key.directory() / "act.engine"
    assert check_engine(root, key, "act").state == "fresh"
    assert candidate_versions(root, ["act"]) == {"10.3.0"} and candidate_versions(root, ["act", "x"]) == set()
    # another workspace is another engine for `edge build`; the runtime may still use it
    status = check_engine(root, key, "act", BuildOptions(workspace_mb=512))
    assert status.state == "stale" and "'workspace_mb': 512" in status.reason
    assert check_engine(root, key, "act", BuildOptions()).state == "fresh"
    tf32_engine = EngineKey(**{**key.__dict__, "builder_flags": ""})  # built by the old code: TF32 left on
    assert check_engine(root, tf32_engine, "act").state == "stale"

    other_device = EngineKey("10.3.0", "RTX 4090", "8.9", "fp32", key.onnx_sha256, key.builder_flags, 128, 24,
                             "12.6", "12.6")
    status = check_engine(root, other_device, "act")
    assert status.state == "missing" and "engines found for other builds: trt10.3.0_orin-nvgpu_sm87_fp32" in status.reason

    reexported = EngineKey(**{**key.__dict__, "onnx_sha256": "cd" * 32})
    (root / key.directory() / "act.json").write_text(json.dumps({"key": reexported.__dict__, "engine_sha256": "x"}))
    status = check_engine(root, key, "act")
    assert status.state == "stale" and "onnx_sha256" in status.reason

    write_engine(root, key, "act", b"engine bytes", BuildOptions(), {})
    path.write_bytes(b"truncated")
    status = check_engine(root, key, "act")
    assert status.state == "stale" and "changed after it was built" in status.reason

    (root / key.directory() / "act.json").unlink()
    assert check_engine(root, key, "act").state == "stale"


def test_fp16_engines_come_from_the_checked_fp16_onnx(package_copy):
    package = load_package(package_copy("act_env"))
    fp32_sha = package.manifest.graphs["act"].sha256
    assert engine_source(package, "act", "fp32")[1] == fp32_sha
    with pytest.raises(BackendError, match="python -m export.fp16"):
        engine_source(package, "act", "fp16")  # on every version: FP16 needs the preflight's FP16 ONNX
    with pytest.raises(BackendError, match="unknown precision"):
        engine_source(package, "act", "int8")

    preflight(package.path, steps=1, progress=lambda _m: None)
    package = load_package(package.path)
    path, sha = engine_source(package, "act", "fp16")
    assert path == package.path / "fp16" / "act.onnx" and sha != fp32_sha
    assert engine_key(package, "act", "fp16", "10.3.0", GPU).onnx_sha256 == sha  # JetPack 6 too
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BackendError, match="does not match"):
        engine_source(package, "act", "fp16")


def test_the_key_tells_devices_of_one_name_apart(package_copy):
    """An Orin NX and an AGX Orin share name and compute capability: SM count, memory and CUDA versions differ."""
    package = load_package(package_copy("act_env"))
    root = cache_root(package)
    key = engine_key(package, "act", "fp32", "10.3.0", GPU)
    assert (key.sm_count, key.memory_gib, key.cuda_runtime, key.cuda_driver) == (16, 64, "12.6", "12.6")
    write_engine(root, key, "act", b"engine bytes", BuildOptions(), {})
    # Jetson memory is shared with the system: a few hundred MB more or less is the same device
    assert engine_key(package, "act", "fp32", "10.3.0", GpuInfo(*[*vars(GPU).values()][:3], 64 * 10**9 - 3 * 10**8,
                                                                  "12.6", "12.6")) == key
    for other, field in ((GpuInfo("Orin (nvgpu)", "8.7", 8, 16 * 2**30, "12.6", "12.6"), "sm_count 16 -> 8"),
                         (GpuInfo("Orin (nvgpu)", "8.7", 16, 64 * 10**9, "12.6", "12.8"), "cuda_driver '12.6' -> '12.8'"),
                         (GpuInfo("Orin (nvgpu)", "8.7", 16, 64 * 10**9, "12.2", "12.6"), "cuda_runtime")):
        status = check_engine(root, engine_key(package, "act", "fp32", "10.3.0", other), "act")
        assert status.state == "stale" and field in status.reason, status.reason
    # an engine recorded under the key before these fields existed is stale, so `edge build --rebuild` replaces it
    meta = root / key.directory() / "act.json"
    record = json.loads(meta.read_text())
    for name in ("sm_count", "memory_gib", "cuda_runtime", "cuda_driver"):
        del record["key"][name]
    meta.write_text(json.dumps(record))
    status = check_engine(root, key, "act")
    assert status.state == "stale" and "older cache key" in status.reason
