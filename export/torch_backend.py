"""A PyTorch backend: a package's graphs run as the family's PyTorch GraphExport modules, not ONNX.

The runners (queues, schedulers, code sampling, normalisation) are the robot's own, unchanged; only
the networks are PyTorch, rebuilt from the package's source checkpoint exactly as the exporter built
them before tracing. This is "the PyTorch policy" that `edge-export eval` and
benchmarks/eval_demo.py compare the exported ONNX graphs with.

    from export.torch_backend import TorchBackend
    policy = runner_class("act")(load_package(pkg), TorchBackend())           # manifest.source.checkpoint
    policy = runner_class("act")(load_package(pkg), TorchBackend(checkpoint="ckpt/pretrained_model"))

The checkpoint's content hash must equal the one the manifest recorded (`source.sha256`), so the
PyTorch networks are the package's weights, not a retrained or edited checkpoint; `verify=False`
(`edge-export eval --any-checkpoint`) compares against another checkpoint on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.errors import BackendError
from edge.runtime.backends.base import Backend, GraphSession
from edge.runtime.package import GraphSpec, PolicyPackage
from export.checkpoint import CheckpointError, load_checkpoint
from export.families import known_family
from export.families.base import ExportOptions, FamilyExport, GraphExport


class TorchSession(GraphSession):
    """One GraphExport module: numpy feeds by name → positional tensors → outputs by name, float32 numpy."""

    def __init__(self, name: str, spec: GraphSpec, graph: GraphExport):
        super().__init__(name, spec)
        self.module = graph.module
        self.input_names = list(graph.input_names)
        self.output_names = list(graph.output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise BackendError(f"graph {self.name!r}: missing input(s) {missing}")
        with torch.inference_mode():
            outputs = self.module(*(torch.from_numpy(np.ascontiguousarray(feeds[n], dtype=np.float32))
                                    for n in self.input_names))
        if isinstance(outputs, torch.Tensor):
            outputs = (outputs,)
        return {n: t.detach().cpu().numpy().astype(np.float32, copy=False) for n, t in zip(self.output_names, outputs)}


def fused_steps(package: PolicyPackage) -> int | None:
    """K of the package's fused DDIM graph (`denoise_<K>`), if it has one: the exporter builds it on request."""
    fused = getattr(package.manifest.policy, "fused_graphs", {})
    ks = sorted({spec.num_inference_steps for spec in fused.values()})
    if len(ks) > 1:
        raise BackendError(f"package has several fused graphs {sorted(fused)}; the PyTorch backend rebuilds one")
    return ks[0] if ks else None


def source_checkpoint(package: PolicyPackage) -> Path:
    """The manifest's `source.checkpoint`, a relative one taken from the package directory."""
    recorded = Path(package.manifest.source.checkpoint)
    return recorded if recorded.is_absolute() else (package.path / recorded).resolve()


class TorchBackend(Backend):
    """Runs graphs as PyTorch modules built from a LeRobot checkpoint (CPU, float32, eval mode).

    `checkpoint`: the pretrained_model directory; default the package's `manifest.source.checkpoint`.
    `threads`: torch intra-op threads (default: leave torch's setting alone).
    """

    name = "pytorch"

    def __init__(self, checkpoint: str | Path | None = None, threads: int | None = None, verify: bool = True):
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.verify = verify
        if threads is not None:
            torch.set_num_threads(threads)
        self._families: dict[Path, FamilyExport] = {}
        self.source: Path | None = None

    def describe(self) -> str:
        where = f" from {self.source}" if self.source else ""
        return f"pytorch {torch.__version__} (CPU, fp32, {torch.get_num_threads()} threads){where}"

    def checkpoint_for(self, package: PolicyPackage) -> Path:
        path = self.checkpoint or source_checkpoint(package)
        if not path.exists():
            raise BackendError(f"the PyTorch policy needs the package's source checkpoint, but {path} does not exist"
                               " (it was exported on another machine or from a temporary directory); give its "
                               "pretrained_model directory with --checkpoint (checkpoint= in Python; the bundled "
                               "demos' checkpoints: python examples/make_demo_policies.py rebuilds them under "
                               "build/demo_checkpoints/)")
        return path

    def family(self, package: PolicyPackage) -> FamilyExport:
        key = package.path.resolve()
        if key not in self._families:
            path = self.checkpoint_for(package)
            try:
                ckpt = load_checkpoint(path)
            except CheckpointError as exc:
                raise BackendError(f"checkpoint {path}: {exc}") from None
            if ckpt.policy_type != package.manifest.policy_type:
                raise BackendError(f"checkpoint {path} is a {ckpt.policy_type!r} policy, the package "
                                   f"{package.manifest.policy_type!r}")
            if self.verify and ckpt.sha256 != package.manifest.source.sha256:
                raise BackendError(f"checkpoint {path} is not the one {package.path} was exported from (sha256 "
                                   f"{ckpt.sha256[:12]}… vs the manifest's {package.manifest.source.sha256[:12]}…); "
                                   "--any-checkpoint (verify=False in Python) compares with it anyway")
            k = fused_steps(package)
            options = ExportOptions(samples=1, extra={"fused_steps": k} if k is not None else {})
            self._families[key] = known_family(ckpt.policy_type).exporter().build(ckpt, options)
            self.source = ckpt.path
        return self._families[key]

    def load(self, package: PolicyPackage, graph: str) -> GraphSession:
        graphs = {g.name: g for g in self.family(package).graphs}
        if graph not in graphs:
            raise BackendError(f"graph {graph!r} of {package.path} has no PyTorch counterpart "
                               f"(the family builds {sorted(graphs)})")
        spec = package.manifest.graphs[graph]
        export = graphs[graph]
        if sorted(export.input_names) != sorted(t.name for t in spec.inputs):
            raise BackendError(f"graph {graph!r}: the PyTorch module takes {export.input_names}, the manifest "
                               f"{[t.name for t in spec.inputs]}")
        export.module.eval()
        return TorchSession(graph, spec, export)


def torch_policy(package: str | Path, checkpoint: str | Path | None = None, threads: int | None = None,
                 **options: Any):
    """`edge.load_policy` with the PyTorch backend: the same runner, PyTorch networks."""
    from edge.runtime.package import load_package
    from edge.runtime.policies import runner_class

    pkg = load_package(package)
    return runner_class(pkg.manifest.policy_type)(pkg, TorchBackend(checkpoint, threads), **options)
