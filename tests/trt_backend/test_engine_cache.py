"""Engine cache keys and stale-engine detection (no TensorRT needed)."""

from __future__ import annotations

import json

import pytest

from edge.backends.engine_cache import (EngineKey, cache_root, check_engine, engine_key, engine_source, strongly_typed,
                                        write_engine)
from edge.errors import BackendError
from edge.package import load_package
from export.fp16 import preflight

GPU = ("Orin (nvgpu)", "8.7")


def test_key_directory_and_version_rule():
    key = EngineKey("10.3.0.30", "Orin (nvgpu)", "8.7", "fp16", "ab" * 32)
    assert key.directory() == "trt10.3.0.30_orin-nvgpu_sm87_fp16"
    assert not strongly_typed("10.3.0.30") and not strongly_typed("10.11.0")
    assert strongly_typed("10.12.0.36") and strongly_typed("11.0.0")


def test_fresh_missing_and_stale(package_copy):
    package = load_package(package_copy("act_env"))
    root = cache_root(package)
    key = engine_key(package, "act", "fp32", "10.3.0", *GPU)
    assert key.onnx_sha256 == package.manifest.graphs["act"].sha256

    status = check_engine(root, key, "act")
    assert status.state == "missing" and "trt10.3.0_orin-nvgpu_sm87_fp32" in status.reason

    path = write_engine(root, key, "act", b"engine bytes", {"build_seconds": 1.0})
    assert path == root / key.directory() / "act.engine"
    assert check_engine(root, key, "act").state == "fresh"

    other_device = EngineKey("10.3.0", "RTX 4090", "8.9", "fp32", key.onnx_sha256)
    status = check_engine(root, other_device, "act")
    assert status.state == "missing" and "engines found for other builds: trt10.3.0_orin-nvgpu_sm87_fp32" in status.reason

    reexported = EngineKey(**{**key.__dict__, "onnx_sha256": "cd" * 32})
    (root / key.directory() / "act.json").write_text(json.dumps({"key": reexported.__dict__, "engine_sha256": "x"}))
    status = check_engine(root, key, "act")
    assert status.state == "stale" and "onnx_sha256" in status.reason

    write_engine(root, key, "act", b"engine bytes", {})
    path.write_bytes(b"truncated")
    status = check_engine(root, key, "act")
    assert status.state == "stale" and "changed after it was built" in status.reason

    (root / key.directory() / "act.json").unlink()
    assert check_engine(root, key, "act").state == "stale"


def test_fp16_sources_by_tensorrt_version(package_copy):
    package = load_package(package_copy("act_env"))
    fp32_sha = package.manifest.graphs["act"].sha256
    assert engine_source(package, "act", "fp16", "10.3.0")[1] == fp32_sha  # FP16 flag on the FP32 ONNX
    with pytest.raises(BackendError, match="python -m export.fp16"):
        engine_source(package, "act", "fp16", "10.12.0")  # strongly typed: needs the FP16 ONNX
    with pytest.raises(BackendError, match="unknown precision"):
        engine_source(package, "act", "int8", "10.3.0")

    preflight(package.path, steps=1, progress=lambda _m: None)
    package = load_package(package.path)
    path, sha = engine_source(package, "act", "fp16", "10.12.0")
    assert path == package.path / "fp16" / "act.onnx" and sha != fp32_sha
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BackendError, match="does not match"):
        engine_source(package, "act", "fp16", "11.0.0")
