"""One served package: requests of the wire contract (edge/runtime/wire.py) in, chunks out, through edge's runtime.

Run by the Python-backend model of a Triton repository (edge/serve/triton_model.py), `edge serve`'s or a written
one. Triton's dynamic batcher hands over several requests at once; the package's graphs are exported with batch 1
(the export refuses dynamic axes, TensorRT engines are static), so the rows of a batch run one after another on
those graphs, each with its own seed and its own scheduler steps (docs/serving.md says why and what it costs). A row
whose chunk comes out non-finite answers NaN instead of failing its batch neighbours; the robot refuses it as a
PolicyOutputError.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

import edge
from edge.errors import OptionError, PolicyOutputError
from edge.runtime.policies.base import PolicyRunner
from edge.runtime.wire import WireSpec, package_identity, wire_spec


class ServedPolicy:
    """A package loaded for serving: its runner, identity and wire spec. `options` go to edge.load_policy."""

    def __init__(self, package_path: Path, backend: str = "auto", **options: Any):
        self.path = Path(package_path)
        self.runner: PolicyRunner = edge.load_policy(self.path, backend=backend, **options)
        try:
            self.identity = np.frombuffer(package_identity(self.path), np.uint8)
            self.spec: WireSpec = wire_spec(self.runner.package.manifest)
            self.spec.check_size(str(self.path))
            self.names = dict(self.spec.observation)  # manifest input → wire tensor
            self.warm_up()
        except BaseException:
            self.runner.close()
            raise

    def warm_up(self) -> None:
        """One chunk from a zero window: loads the graphs' kernels and checks the chunk's shape matches the spec."""
        zeros = {t.name: np.zeros((1, *t.shape), t.dtype) for t in self.spec.inputs}
        chunk = self.infer([zeros])[0]["chunk"]
        if chunk.shape[1:] != (self.spec.plan_rows, self.spec.action_dim):
            raise OptionError(f"{self.path}: a planned chunk has shape {chunk.shape[1:]}, the wire contract says "
                              f"{(self.spec.plan_rows, self.spec.action_dim)}")

    def plan_row(self, request: Mapping[str, np.ndarray], row: int) -> tuple[np.ndarray, float]:
        """The chunk for one row of a request and its compute time in ms."""
        t0 = time.perf_counter()
        window = {name: request[wire][row] for name, wire in self.names.items()}
        k = int(np.clip(request["committed_rows"][row, 0], 0, self.spec.plan_rows))
        committed = request["committed"][row, :k]
        try:
            chunk = self.runner.plan_window(window, committed, int(request["delay"][row, 0]),
                                            int(request["seed"][row, 0]))
        except PolicyOutputError:
            chunk = np.full((self.spec.plan_rows, self.spec.action_dim), np.nan, np.float32)
        return chunk.astype(np.float32, copy=False), (time.perf_counter() - t0) * 1e3

    def infer(self, requests: list[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Triton's list of requests (each with a leading batch axis) → one response dict per request."""
        rows = sum(len(r["seed"]) for r in requests)
        responses = []
        for request in requests:
            results = [self.plan_row(request, i) for i in range(len(request["seed"]))]
            n = len(results)
            responses.append({"chunk": np.stack([c for c, _ in results]),
                              "identity": np.tile(self.identity, (n, 1)),
                              "compute_ms": np.array([[ms] for _, ms in results], np.float32),
                              "batch": np.full((n, 1), rows, np.int32)})
        return responses

    def close(self) -> None:
        self.runner.close()
