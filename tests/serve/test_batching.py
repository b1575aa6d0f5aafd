"""Batches on the serve/ batch graphs (edge-export --serve-batch): each row is the local runner's chunk for it alone.

Real exported graphs of the LeRobot fixtures, real ONNX Runtime, no Triton: `ServedPolicy.infer` is what Triton's
Python backend calls with the rows its dynamic batcher formed (tests/serve/test_remote_planner.py runs it through
the real tritonserver). The reference is a separately loaded runner planning each row alone on the batch-1 graphs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.errors import PackageError
from edge.runtime.normalize import Normalizer
from edge.runtime.package import load_package
from edge.runtime.package.batches import load_batches
from edge.runtime.wire import package_identity
from edge.serve.model import ServedPolicy
from export.cli import main as export_main
from export.errors import ExportError
from export.families.base import ExportOptions
from export.pipeline import export_package

CASES = [("act_cam", {}), ("diffusion_cam", {"sampler": "ddpm", "num_inference_steps": 6, "rtc": True}),
         ("diffusion_cam", {"sampler": "unipc", "num_inference_steps": 4}), ("vqbet_cam", {}),
         ("vqbet_sequential", {})]


def requests(served: ServedPolicy, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """n request rows with different windows, committed rows (row 0 none), delays and seeds."""
    spec = served.spec
    request = {t.name: rng.standard_normal((n, *t.shape)).astype(t.dtype) for t in spec.inputs}
    request["committed"] *= 5
    request["committed_rows"] = rng.integers(1, spec.plan_rows, (n, 1)).astype(np.int32)
    request["committed_rows"][0] = 0
    request["delay"] = rng.integers(0, 4, (n, 1)).astype(np.int32)
    request["seed"] = (rng.integers(0, 2 ** 40) + 7919 * np.arange(n)[:, None]).astype(np.int64)
    return request


@pytest.fixture(scope="module", params=CASES, ids=["act", "diffusion-ddpm-rtc", "diffusion-unipc", "vqbet", "vqbet-sequential"])
def case(request, batched_package):  # noqa: ANN001, ANN201
    name, options = request.param
    path = batched_package(name)
    served = ServedPolicy(path, backend="onnxruntime", **options)
    local = edge.load_policy(path, backend="onnxruntime", **options)
    yield served, local
    served.close()
    local.close()


@pytest.mark.parametrize("n, runs", [(4, [(4, 4)]), (3, [(3, 4)]), (2, [(2, 2)]), (6, [(4, 4), (2, 2)]),
                                     (5, [(4, 4), (1, 1)])])
def test_every_row_of_a_batch_is_its_local_chunk(case, n, runs):  # noqa: ANN001
    """n = 3 runs padded on B = 4, n = 6 splits into 4 + 2, n = 5 into 4 + one row on the batch-1 graphs."""
    served, local = case
    assert sorted(served.batched) == [2, 4] and served.groups(n) == runs
    request = requests(served, n, np.random.default_rng(n))
    (response,) = served.infer([request])
    m = local.package.manifest
    normalized = Normalizer(m.action.normalization, (m.action.dim,))
    expected = [local.plan_window(*served.row(request, i)) for i in range(n)]
    for i in range(n):
        assert np.abs(normalized(response["chunk"][i]) - normalized(expected[i])).max() <= 1e-5, i
        assert np.abs(normalized(response["chunk"][i]) - normalized(expected[(i + 1) % n])).max() > 1e-3, \
            "two rows gave the same chunk: the test would not see rows mixed up"
    assert (response["batch"] == n).all() and (response["identity"] == served.identity).all()


def test_several_requests_in_one_call_keep_their_rows(case):  # noqa: ANN001
    """Triton hands over a list of requests; their rows batch together and go back to their own request."""
    served, local = case
    rng = np.random.default_rng(7)
    parts = [requests(served, 1, rng), requests(served, 2, rng)]
    responses = served.infer(parts)
    for request, response in zip(parts, responses):
        assert len(response["chunk"]) == len(request["seed"])
        for i in range(len(request["seed"])):
            assert np.allclose(response["chunk"][i], local.plan_window(*served.row(request, i)), atol=1e-4, rtol=0)


def test_a_non_finite_row_answers_nan_without_failing_its_neighbours(case):  # noqa: ANN001
    served, local = case
    request = requests(served, 3, np.random.default_rng(5))
    request["obs_0"][1] = 3e38
    chunks = served.infer([request])[0]["chunk"]
    assert served.groups(3) == [(3, 4)]
    assert np.isnan(chunks[1]).all()
    for i in (0, 2):
        assert np.allclose(chunks[i], local.plan_window(*served.row(request, i)), atol=1e-4, rtol=0)


def test_a_package_without_batch_graphs_runs_rows_one_after_another(export_fixture):  # noqa: ANN001
    path = export_fixture("act_cam")
    assert load_batches(load_package(path)) is None
    with edge.load_policy(path, backend="onnxruntime") as local:
        served = ServedPolicy(path, backend="onnxruntime")
        try:
            assert served.batched == {} and served.groups(3) == [(1, 1)] * 3
            request = requests(served, 3, np.random.default_rng(1))
            chunks = served.infer([request])[0]["chunk"]
            for i in range(3):
                assert np.array_equal(chunks[i], local.plan_window(*served.row(request, i)))
        finally:
            served.close()


def test_batch_graphs_leave_the_package_identity_alone(batched_package, tmp_path: Path):  # noqa: ANN001
    """serve/ is not named by manifest.json: the package with or without it is the same package."""
    path = batched_package("act_cam")
    copy = tmp_path / "act_cam"
    shutil.copytree(path, copy)
    shutil.rmtree(copy / "serve")
    assert package_identity(copy) == package_identity(path)
    assert "serve" not in (path / "manifest.json").read_text()


def edited(package: Path, tmp_path: Path, edit) -> Path:  # noqa: ANN001
    copy = tmp_path / package.name
    shutil.copytree(package, copy)
    data = json.loads((copy / "serve" / "manifest.json").read_text())
    edit(data)
    (copy / "serve" / "manifest.json").write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["batches"][0].update(batch="2"), r"'batches\[0\]\.batch' must be an integer, got '2' \(str\)"),
    (lambda d: d["batches"][1].update(batch=2), r"'batches\[1\]\.batch' is 2; batches are listed once each"),
    (lambda d: d["batches"][0].update(batch=1), r"'batches\[0\]\.batch' is 1; it must be within 2\.\.64"),
    (lambda d: d["batches"][0]["max_abs_error"].update(act=-1.0), r"'batches\[0\]\.max_abs_error\.act' is -1\.0"),
    (lambda d: d["batches"][0]["graphs"]["act"]["inputs"][0].update(shape=[3, 6]),
     r"'batches\[0\]\.graphs\.act\.inputs\[0\]' \(observation\.state\) is float32 \[3, 6\]; with batch 2"),
    (lambda d: d["source_graphs"].update(act="0" * 64), r"'source_graphs\.act' is not the package's graph 'act'"),
    (lambda d: d.update(extra=1), r"the file has unknown key\(s\) \['extra'\]"),
    (lambda d: d["batches"][0]["graphs"]["act"].update(sha256="0" * 64), r"batch-2 graph 'act'.*does not match"),
])
def test_a_bad_serve_manifest_is_refused_naming_the_field(batched_package, tmp_path: Path, edit, field):  # noqa: ANN001
    copy = edited(batched_package("act_cam"), tmp_path, edit)
    with pytest.raises(PackageError, match=field):
        load_batches(load_package(copy))
    with pytest.raises(PackageError, match=field):
        ServedPolicy(copy, backend="onnxruntime")


@pytest.mark.parametrize("value, why", [("1,4", "must be an integer in 2..64, got 1"), ("4,4", "lists a value twice"),
                                         ("2,x", "expected an integer"), ("65", "must be an integer in 2..64")])
def test_a_bad_serve_batch_is_refused_at_parse_time(lerobot_fixtures: Path, tmp_path: Path, capsys, value, why):  # noqa: ANN001
    out = tmp_path / "package"
    with pytest.raises(SystemExit) as exit_:
        export_main([str(lerobot_fixtures / "act_cam" / "pretrained_model"), "--out", str(out), "--serve-batch", value])
    assert exit_.value.code == 2
    assert f"argument --serve-batch: {why}" in capsys.readouterr().err
    assert not out.exists()


def test_int8_batch_graphs_are_refused_before_anything_is_written(lerobot_fixtures: Path, tmp_path: Path):
    out = tmp_path / "package"
    with pytest.raises(ExportError, match="--serve-batch with --cpu-precision int8 is not offered"):
        export_package(lerobot_fixtures / "act_cam" / "pretrained_model", out,
                       ExportOptions(serve_batches=(2,), cpu_precision="int8"), progress=lambda _msg: None)
    assert not out.exists()
