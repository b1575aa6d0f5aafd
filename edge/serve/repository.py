"""`edge serve --write-repository DIR PACKAGE...`: a standard Triton model repository, one model per package.

DIR/<name>/config.pbtxt (Python backend, the wire contract's tensors, dynamic_batching, instance_group, the package
identity and options as parameters), DIR/<name>/1/model.py (edge/serve/triton_model.py) and DIR/<name>/1/package/
(the package's files, unchanged: the served copy keeps its source's identity; `edge serve`'s private repository links
the package instead). Written beside DIR and renamed into place, so a failure leaves no half repository.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edge.runtime.files import staged_directory
from edge.runtime.package import load_package
from edge.runtime.wire import WireTensor, model_name, package_identity, wire_spec

TRITON_TYPES = {np.float32: "TYPE_FP32", np.int32: "TYPE_INT32", np.int64: "TYPE_INT64", np.uint8: "TYPE_UINT8"}


def _tensors(kind: str, tensors: tuple[WireTensor, ...]) -> str:
    rows = [f'  {{ name: "{t.name}" data_type: {TRITON_TYPES[t.dtype]} dims: [ {", ".join(map(str, t.shape))} ] }}'
            for t in tensors]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]"


def config_pbtxt(name: str, package: Path, options: dict[str, Any], max_batch: int, queue_delay_us: int,
                 instances: int, backend: str = "auto") -> str:
    """The model's config.pbtxt (protobuf text format of Triton's ModelConfig)."""
    spec = wire_spec(load_package(package).manifest)
    spec.check_size(str(package))
    params = {"edge_package_identity": package_identity(package).hex(), "edge_options": json.dumps(options),
              "edge_backend": backend}
    parameters = "\n".join(f'parameters: {{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }}'
                           for k, v in params.items())
    return "\n".join([
        f'name: "{name}"', 'backend: "python"', f"max_batch_size: {max_batch}",
        _tensors("input", spec.inputs), _tensors("output", spec.outputs),
        f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}",
        f"instance_group [ {{ count: {instances} kind: KIND_AUTO }} ]",
        parameters, ""])


def write_repository(root: Path, packages: list[Path], options: list[dict[str, Any]], max_batch: int,
                     queue_delay_us: int, instances: int, backend: str = "auto", link: bool = False) -> None:
    """Write (or replace) the repository at `root` with one model per package; `link`: each model's package/ is a
    link to the package (its engines included, nothing copied), not a copy without engines."""
    model_py = Path(__file__).with_name("triton_model.py")
    with staged_directory(Path(root)) as staged:
        for package, opts in zip(packages, options):
            name = model_name(package)
            config = config_pbtxt(name, Path(package), opts, max_batch, queue_delay_us, instances, backend)
            version = staged / name / "1"
            version.mkdir(parents=True)
            (staged / name / "config.pbtxt").write_text(config)
            shutil.copy2(model_py, version / "model.py")
            if link:
                (version / "package").symlink_to(Path(package).resolve(), target_is_directory=True)
            else:
                shutil.copytree(package, version / "package", ignore=shutil.ignore_patterns("engines", "*.engine"))
