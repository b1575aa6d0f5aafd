"""Robot-side runtime: load a policy package and run it without PyTorch.

    policy = edge.load_policy("packages/act", backend="auto")
    policy.reset()
    action = policy.select_action({"observation.state": state, "observation.images.top": frame})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.errors import BackendError, EdgeError, ObservationError, OptionError, PackageError, PolicyOutputError
from edge.runtime.backends import get_backend
from edge.runtime.package import load_package
from edge.runtime.policies import runner_class
from edge.runtime.policies.base import PolicyRunner

__all__ = ["load_policy", "PolicyRunner", "EdgeError", "PackageError", "ObservationError", "BackendError",
           "OptionError", "PolicyOutputError"]


def load_policy(path: str | Path, backend: str = "auto", engine_dir: str | Path | None = None,
                **options: Any) -> PolicyRunner:
    """Load a policy package onto a backend ("auto", "onnxruntime", "tensorrt").

    `engine_dir`: where `edge build --engine-dir` put the TensorRT engines (default $EDGE_ENGINE_DIR, else
    `<package>/engines`). Every family takes `ood_margin` (standard deviations beyond the training range at
    which a state value counts as out of distribution, default 3). Family options pass through: ACT
    `temporal_ensemble_coeff`; Diffusion `sampler`, `num_inference_steps`, `seed`, `fused`; VQ-BeT
    `greedy`, `temperature`, `seed`.
    """
    package = load_package(path)
    backend_options = {"engine_dir": engine_dir} if engine_dir is not None and backend != "onnxruntime" else {}
    return runner_class(package.manifest.policy_type)(package, get_backend(backend, **backend_options), **options)
