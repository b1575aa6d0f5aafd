"""Robot-side runtime: load a policy package and run it without PyTorch.

    with edge.load_policy("packages/act", backend="auto") as policy:
        policy.reset()
        action = policy.select_action({"observation.state": state, "observation.images.top": frame})

The runner `load_policy` returns owns its graph sessions and the backend it made: `close()` (or leaving the `with`
block) frees them, GPU memory included.
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
    `greedy`, `temperature`, `seed`. The runner owns the backend made here and closes it in `close()`.
    """
    package = load_package(path)
    backend_options = {"engine_dir": engine_dir} if engine_dir is not None and backend != "onnxruntime" else {}
    made = get_backend(backend, **backend_options)
    try:
        runner = runner_class(package.manifest.policy_type)(package, made, **options)
    except BaseException:
        made.close()
        raise
    runner.owns_backend = True  # made here, so the runner closes it with itself
    return runner
