"""ONNX Runtime backend: the optimised-model cache (never stale, never in the package) and the per-graph threads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.runtime.backends import ort_cache
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.package import load_package, sha256_file
from edge.runtime.policies import runner_class


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory, and every graph counted as large enough to be cached."""
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ort_cache, "MIN_BYTES", 0)
    return tmp_path / "cache"


def _policy(path, **options):  # noqa: ANN001, ANN202
    """The package's runner on a CPU ONNX Runtime backend with `options`."""
    package = load_package(path)
    return runner_class(package.manifest.policy_type)(package, OnnxRuntimeBackend(["CPUExecutionProvider"], **options))


def _chunk(policy) -> np.ndarray:  # noqa: ANN001
    rng = np.random.default_rng(0)
    obs = {i.name: (rng.integers(0, 256, i.shape, dtype=np.uint8) if i.kind == "image"
                    else rng.standard_normal(i.shape).astype(np.float32)) for i in policy.package.manifest.inputs}
    return policy.predict_action_chunk(obs)


def test_cached_graph_runs_the_same_and_the_package_is_untouched(export_fixture, cache):
    path = export_fixture("act_cam")
    before = sorted(p.name for p in path.iterdir())
    reference = _chunk(_policy(path, cache=False))
    cached = _chunk(_policy(path))
    np.testing.assert_array_equal(cached, reference)
    sha = load_package(path).manifest.graphs["act"].sha256
    entry = ort_cache.entry_dir(__import__("onnxruntime").__version__, sha)
    key = json.loads((entry / ort_cache.KEY).read_text())
    assert entry.parent.parent == cache and key["onnx_sha256"] == sha
    assert (entry / ort_cache.DATA).stat().st_size > 0.9 * (path / "act.onnx").stat().st_size  # the weights
    assert sorted(p.name for p in path.iterdir()) == before


def test_an_entry_is_keyed_by_the_graph_and_rebuilt_when_it_does_not_match(export_fixture, cache):
    import onnxruntime as ort

    package = load_package(export_fixture("act_cam"))
    source, sha = package.graph_path("act"), package.manifest.graphs["act"].sha256
    model = ort_cache.cached_model(ort, source, sha)
    other = ort_cache.cached_model(ort, source, "0" * 64)
    assert model.parent != other.parent  # another graph hash, another entry
    key = model.parent / ort_cache.KEY
    record = json.loads(key.read_text())
    key.write_text(json.dumps({**record, "onnxruntime": "0.0.0"}))  # written by another runtime
    stamp = (model.parent / ort_cache.DATA).stat().st_mtime_ns
    assert ort_cache.cached_model(ort, source, sha) == model
    assert json.loads(key.read_text())["onnxruntime"] == ort.__version__
    data = model.parent / ort_cache.DATA
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10  # one bit of one weight, same size: the hash check finds it, it is rebuilt
    data.write_bytes(bytes(damaged))
    ort_cache.cached_model(ort, source, sha)
    assert sha256_file(data) == record["sha256"][ort_cache.DATA]
    assert data.stat().st_mtime_ns != stamp


def test_an_entry_that_fails_to_load_is_replaced_with_a_warning(export_fixture, cache):
    import onnxruntime as ort

    path = export_fixture("act_cam")
    package = load_package(path)
    model = ort_cache.cached_model(ort, package.graph_path("act"), package.manifest.graphs["act"].sha256)
    data = model.parent / ort_cache.DATA
    size = data.stat().st_size
    data.write_bytes(b"\0" * size)  # garbage whose hashes are recorded: passes the check, fails in ONNX Runtime
    model.write_bytes(b"not a model" + b"\0" * (model.stat().st_size - 11))
    key = model.parent / ort_cache.KEY
    record = json.loads(key.read_text())
    key.write_text(json.dumps({**record, "sha256": {ort_cache.MODEL: sha256_file(model), ort_cache.DATA:
                                                    sha256_file(data)}}))
    with pytest.warns(RuntimeWarning, match="could not be loaded"):
        policy = _policy(path)
    assert np.all(np.isfinite(_chunk(policy)))
    assert not model.parent.exists()


def test_an_unwritable_cache_falls_back_to_the_package(export_fixture, cache, monkeypatch):
    blocker = cache.parent / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    monkeypatch.setenv("EDGE_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="could not be written"):
        policy = _policy(export_fixture("act_cam"))
    assert np.all(np.isfinite(_chunk(policy)))


def test_small_graphs_run_on_one_thread_unless_told(export_fixture, monkeypatch):
    from edge.runtime.backends import onnxruntime as backend_module

    path = load_package(export_fixture("act_env")).graph_path("act")
    assert OnnxRuntimeBackend().graph_threads(path) == 1  # a few MB of weights
    monkeypatch.setattr(backend_module, "SMALL_GRAPH_BYTES", 0)
    monkeypatch.setattr(backend_module.os, "cpu_count", lambda: 6)
    assert OnnxRuntimeBackend().graph_threads(path) == 5  # one core left to the control loop
    monkeypatch.setattr(backend_module.os, "cpu_count", lambda: 1)
    assert OnnxRuntimeBackend().graph_threads(path) == 1
    assert OnnxRuntimeBackend(threads=3).graph_threads(path) == 3
