"""The PyTorch backend runs the exporter's own modules: same outputs as ONNX Runtime, same runner logic."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import BackendError
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.package import load_package
from edge.runtime.policies import runner_class
from export.torch_backend import TorchBackend


@pytest.mark.parametrize("fixture", ["act_package", "diffusion_package", "vqbet_cam"])
def test_torch_matches_onnxruntime_on_validation_samples(fixture, request):
    if fixture == "vqbet_cam":  # LeRobot's own VQ-BeT (image encoder, secondary-code graph), exported
        package = load_package(request.getfixturevalue("export_fixture")("vqbet_cam"))
    else:
        package = load_package(request.getfixturevalue(fixture))
    torch_backend, ort = TorchBackend(threads=1), OnnxRuntimeBackend(["CPUExecutionProvider"], threads=1)
    for graph in package.manifest.graphs:
        t, o = torch_backend.load(package, graph), ort.load(package, graph)
        samples = package.graph_samples(graph)
        assert samples
        for feeds in samples:
            a, b = t.run(feeds), o.run(feeds)
            assert set(a) == set(b) == {s.name for s in package.manifest.graphs[graph].outputs}
            for name in a:
                assert a[name].shape == b[name].shape and a[name].dtype == np.float32
                np.testing.assert_allclose(a[name], b[name], atol=1e-4, rtol=0)


def test_same_runner_same_actions(diffusion_package):
    """The runner's sampler is shared: same seed, same noise, so PyTorch and ORT actions agree closely."""
    package = load_package(diffusion_package)
    cls = runner_class("diffusion")
    runners = [cls(package, b, seed=3, num_inference_steps=3) for b in (TorchBackend(threads=1), OnnxRuntimeBackend(threads=1))]
    obs = {"observation.state": np.array([1, -70, 70, 0, 0, 50], np.float32),
           "observation.environment_state": np.array([0.1, 0.6, 0.0, -0.05], np.float32)}
    actions = [[r.select_action(obs) for _ in range(6)] for r in runners]
    np.testing.assert_allclose(np.array(actions[0]), np.array(actions[1]), atol=1e-3)


def test_missing_or_foreign_checkpoint_is_a_clear_error(act_package, diffusion_package, tmp_path):
    package = load_package(act_package)
    with pytest.raises(BackendError, match="does not exist"):
        TorchBackend(tmp_path / "nowhere").load(package, "act")
    with pytest.raises(BackendError, match="is a 'diffusion' policy"):
        TorchBackend(diffusion_package.parent / "pretrained_model").load(package, "act")
