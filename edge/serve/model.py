"""One served package: requests of the wire contract (edge/runtime/wire.py) in, chunks out, through edge's runtime.

Run by the Python-backend model of a Triton repository (edge/serve/triton_model.py), `edge serve`'s or a written
one. Triton's dynamic batcher hands over several requests at once. A package exported with `--serve-batch` has
static batch-B graphs in its serve/ folder (edge/runtime/package/batches.py): n rows then run on the smallest B >= n,
padded with copies of a real row whose results are dropped (n above the largest B is split into batches of the largest B and the rest);
a single row runs on the batch-1 graphs. Without that folder the rows run one after another on the batch-1 graphs.
Either way each row has its own seed's noise stream, committed actions and delay, as if it came alone
(docs/serving.md), and a row whose chunk comes out non-finite answers NaN instead of failing its batch neighbours;
the robot refuses it as a PolicyOutputError.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

import edge
from edge.errors import OptionError, PolicyOutputError
from edge.runtime.backends.base import GraphSession
from edge.runtime.package.batches import ServeBatches, batch_view, load_batches, no_tensorrt_engines
from edge.runtime.policies.base import PolicyRunner
from edge.runtime.wire import WireSpec, package_identity, wire_spec

Row = tuple[dict[str, np.ndarray], np.ndarray, int, int]  # one request row: window, committed, delay, seed


def batching(batches: ServeBatches | None) -> str:
    """How a package's batches will run, in words (`edge serve` says it per package before the server starts)."""
    if batches is None:
        return "batch rows one after another (no serve/ batch graphs)"
    return f"batch graphs B = {', '.join(map(str, batches.sizes))}"


class ServedPolicy:
    """A package loaded for serving: its runner, batch graphs, identity and wire spec. `options` go to
    edge.load_policy."""

    def __init__(self, package_path: Path, backend: str = "auto", **options: Any):
        self.path = Path(package_path)
        self.runner: PolicyRunner = edge.load_policy(self.path, backend=backend, **options)
        self.batched: dict[int, dict[str, GraphSession]] = {}  # B → the runner's graphs with batch B
        try:
            self.identity = np.frombuffer(package_identity(self.path), np.uint8)
            self.spec: WireSpec = wire_spec(self.runner.package.manifest)
            self.spec.check_size(str(self.path))
            self.names = dict(self.spec.observation)  # manifest input → wire tensor
            self.load_batches()
            self.warm_up()
        except BaseException:
            self.close()
            raise

    def load_batches(self) -> None:
        """The batch graphs of the package's serve/ folder, for the graphs the runner uses, on its backend (with
        "auto": ONNX Runtime, as serve/ has no TensorRT engines)."""
        batches = load_batches(self.runner.package)
        if batches is not None and self.runner.backend.name == "tensorrt":
            raise OptionError(no_tensorrt_engines(self.path))
        for b in batches.batches if batches is not None else []:
            view = batch_view(self.runner.package, b)
            self.batched[b.batch] = {}
            for name in self.runner.graphs:
                self.batched[b.batch][name] = self.runner.backend.load(view, name)

    def warm_up(self) -> None:
        """One chunk from a zero window, and one batch at every B: loads the graphs' kernels and checks the chunk's
        shape matches the spec."""
        for n in [1, *self.batched]:
            zeros = {t.name: np.zeros((n, *t.shape), t.dtype) for t in self.spec.inputs}
            chunk = self.infer([zeros])[0]["chunk"]
            if chunk.shape != (n, self.spec.plan_rows, self.spec.action_dim):
                raise OptionError(f"{self.path}: {n} planned chunks have shape {chunk.shape}, the wire contract "
                                  f"says {(n, self.spec.plan_rows, self.spec.action_dim)}")

    def row(self, request: Mapping[str, np.ndarray], i: int) -> Row:
        """Row i of a request: its normalised window, its k real committed rows, delay and seed."""
        window = {name: request[wire][i] for name, wire in self.names.items()}
        k = int(np.clip(request["committed_rows"][i, 0], 0, self.spec.plan_rows))
        return window, request["committed"][i, :k], int(request["delay"][i, 0]), int(request["seed"][i, 0])

    def finite_or_nan(self, plan: Callable[[], np.ndarray]) -> np.ndarray:
        """`plan()`'s chunk in policy units, or NaN where it refused a non-finite chunk (that row alone)."""
        try:
            return plan()
        except PolicyOutputError:
            return np.full((self.spec.plan_rows, self.spec.action_dim), np.nan, np.float32)

    def groups(self, n: int) -> list[tuple[int, int]]:
        """(rows, B) per run for n rows: the largest B while more rows are left, then the smallest B that holds the
        rest (B = 1: one row, or no batch graphs: rows one after another)."""
        if not self.batched:
            return [(1, 1)] * n
        largest, out = max(self.batched), []
        while n > 0:
            take = min(n, largest)
            out.append((take, 1 if take == 1 else min(b for b in self.batched if b >= take)))
            n -= take
        return out

    def plan(self, rows: list[Row]) -> tuple[list[np.ndarray], list[float]]:
        """Every row's chunk (policy units) and the compute time in ms of the run it was part of."""
        chunks: list[np.ndarray] = []
        times: list[float] = []
        for take, batch in self.groups(len(rows)):
            t0 = time.perf_counter()
            part = rows[len(chunks):len(chunks) + take]
            if batch == 1:
                done = [self.finite_or_nan(lambda: self.runner.plan_window(*part[0]))]
            else:
                normalized = self.runner.plan_batch(*(list(column) for column in zip(*part)),
                                                    graphs=self.batched[batch], batch=batch)
                done = [self.finite_or_nan(lambda c=c: self.runner.actions(c)) for c in normalized]
            chunks += [c.astype(np.float32, copy=False) for c in done]
            times += [(time.perf_counter() - t0) * 1e3] * take
        return chunks, times

    def infer(self, requests: list[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Triton's list of requests (each with a leading batch axis) → one response dict per request."""
        rows = [self.row(r, i) for r in requests for i in range(len(r["seed"]))]
        chunks, times = self.plan(rows)
        responses, start = [], 0
        for request in requests:
            n = len(request["seed"])
            responses.append({"chunk": np.stack(chunks[start:start + n]),
                              "identity": np.tile(self.identity, (n, 1)),
                              "compute_ms": np.array([[ms] for ms in times[start:start + n]], np.float32),
                              "batch": np.full((n, 1), len(rows), np.int32)})
            start += n
        return responses

    def close(self) -> None:
        """The batch graphs' sessions, then the runner (and the backend it made)."""
        for sessions in self.batched.values():
            for session in sessions.values():
                session.close()
        self.runner.close()
