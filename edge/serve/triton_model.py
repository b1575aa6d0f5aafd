"""The Python-backend model of a Triton model repository written by `edge serve --write-repository`.

Copied as `<model>/1/model.py`; Triton's Python backend (in NVIDIA's container, with edge and onnxruntime installed
into its Python: docs/serving.md) loads it. It serves `<model>/1/package` through edge's runtime exactly as
`edge serve` does (edge/serve/model.py) and refuses to load if that package's identity is not the one in
config.pbtxt, so a repository edited by hand cannot serve another package under the same name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.serve.model import ServedPolicy


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's Python backend

        self.pb = pb_utils
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        package = Path(args["model_repository"]) / args["model_version"] / "package"
        self.served = ServedPolicy(package, backend=params.get("edge_backend", "auto"),
                                   **json.loads(params.get("edge_options", "{}")))
        if self.served.identity.tobytes().hex() != params.get("edge_package_identity"):
            self.served.close()
            raise pb_utils.TritonModelException(
                f"{package}: package identity {self.served.identity.tobytes().hex()} is not config.pbtxt's "
                f"edge_package_identity {params.get('edge_package_identity')}")
        self.inputs = [t.name for t in self.served.spec.inputs]

    def execute(self, requests: list[Any]) -> list[Any]:
        pb_utils = self.pb
        batch = [{name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
                 for r in requests]
        return [pb_utils.InferenceResponse([pb_utils.Tensor(k, v) for k, v in response.items()])
                for response in self.served.infer(batch)]

    def finalize(self) -> None:
        self.served.close()
