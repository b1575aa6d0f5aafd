"""The remote planner: `edge run --server grpc://host:8001` plans every chunk on a policy server (`edge serve`).

The local package is the contract: its manifest gives the inputs, their normalisation, the chunking and the
expected identity (sha256 of manifest.json), checked at connect and on every response. The robot checks and
normalises each observation and keeps the observation window (`observe`, control thread); `plan` (the executor's
worker thread) sends one request of edge/runtime/wire.py and gets the whole chunk back, so no graph runs here and
the robot needs numpy and tritonclient[grpc] only (extra [remote]; onnxruntime is never imported).

Faults: an unreachable server or a model that is not ready at connect, or another identity, is refused before
torque-on (PolicyServerError, exit 2). During a run a failed request is retried (the gRPC channel reconnects by
itself) until the request is `timeout_ms` old; then, or when a response carries another identity, `ServerWatch`
takes the robot's safety reaction ("policy server ... gave no chunk for N ms", exit 3) and no policy goal is
sent after it. A response of the wrong shape or dtype, or with a non-finite action, is a PolicyOutputError.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from edge.errors import BackendError, PolicyOutputError, PolicyServerError
from edge.robot.executors import StepResult
from edge.robot.telemetry import Histogram
from edge.runtime.observation import DEFAULT_OOD_MARGIN, ObservationProcessor
from edge.runtime.package import load_package
from edge.runtime.wire import SEED_DTYPE, model_name, pad_committed, package_identity, parse_server_url, wire_spec

RETRY_S = 0.05  # pause between attempts while the server is away
CONNECT_TIMEOUT_S = 5.0


def import_client() -> Any:
    try:
        import tritonclient.grpc as grpcclient
    except ImportError as exc:
        raise BackendError(f"edge run --server needs tritonclient: pip install \".[remote]\" ({exc})") from None
    return grpcclient


class RemotePlanner:
    """A Planner (edge/robot/executors.py) whose chunks come from a Triton server; `connect()` before use."""

    def __init__(self, package_path: str | Path, url: str, timeout_ms: float = 1000.0,
                 ood_margin: float = DEFAULT_OOD_MARGIN, root_cert: Path | None = None, seed: int | None = None):
        self.package = load_package(package_path)
        m = self.package.manifest
        self.url, (self.target, self.tls) = url, parse_server_url(url)
        self.model = model_name(package_path)
        self.timeout_s = timeout_ms / 1e3
        self.root_cert = root_cert
        self.identity = package_identity(self.package.path)
        self.spec = wire_spec(m)
        self.chunking = m.chunking
        self.action_dim = m.action.dim
        self.processor = ObservationProcessor.for_manifest(m, ood_margin)
        self._ood = MappingProxyType(self.processor.counts)
        self._seeds = np.random.default_rng(seed)
        self._client: Any = None
        self._grpc = import_client()
        self._lock = threading.Lock()
        self._requested_at: float | None = None  # monotonic time of the request in flight
        # per response: round trip, server compute, their difference (protocol + queueing), the batch it was in
        self.round_trip_ms, self.compute_ms, self.overhead_ms, self.batch = (Histogram() for _ in range(4))
        self.batch_rows = 0.0
        self.reset()

    @property
    def out_of_distribution(self) -> Mapping[str, int]:
        return self._ood

    def describe(self) -> str:
        return f"policy server {self.url} (model {self.model}, identity {self.identity.hex()[:16]})"

    def connect(self) -> None:
        """Reach the server, check the model is ready and that one chunk carries this package's identity."""
        g = self._grpc
        cert = str(self.root_cert) if self.root_cert is not None else None  # tritonclient reads the file itself
        try:
            self._client = g.InferenceServerClient(self.target, ssl=self.tls, root_certificates=cert)
            ready = self._client.is_model_ready(self.model, client_timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # tritonclient raises its own exception type or grpc's
            raise PolicyServerError(f"policy server {self.url} is not reachable: {_why(exc)}") from None
        if not ready:
            raise PolicyServerError(f"policy server {self.url} has no ready model {self.model!r} (serve this "
                                    f"package with `edge serve {self.package.path}`)")
        zeros = {t.name: np.zeros(t.shape, t.dtype) for t in self.spec.inputs}
        self._request(zeros, time.monotonic() + max(self.timeout_s, CONNECT_TIMEOUT_S), record=False)

    def reset(self) -> None:
        self.processor.reset()
        self._history: deque[dict[str, np.ndarray]] = deque(maxlen=self.chunking.n_obs_steps)

    def observe(self, observation: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], ...]:
        """Check and normalise the observation, add it to the window; returns the window (n_obs_steps normalised
        observations, each a fresh dict), stacked into wire tensors only when a chunk is asked for (`plan`)."""
        normalized = self.processor(observation)
        self._history.extend([normalized] * (1 if self._history else self.chunking.n_obs_steps))
        return tuple(self._history)

    def plan(self, context: tuple[dict[str, np.ndarray], ...], committed: np.ndarray, delay: int) -> np.ndarray:
        """One request: the (P, action_dim) chunk in policy units, row 0 = the observation tick."""
        committed = np.zeros((0, self.action_dim), np.float32) if committed is None else committed
        block, k = pad_committed(committed, self.spec.plan_rows, self.action_dim)
        window = {wire: np.stack([h[name] for h in context]) for name, wire in self.spec.observation.items()}
        tensors = {**window, "committed": block, "committed_rows": np.array([k], np.int32),
                   "delay": np.array([delay], np.int32),
                   "seed": np.array([self._seeds.integers(0, np.iinfo(SEED_DTYPE).max)], SEED_DTYPE)}
        return self._request(tensors, time.monotonic() + self.timeout_s)

    def overdue_ms(self) -> float | None:
        """How long the request in flight has waited, once that is longer than the timeout (else None)."""
        with self._lock:
            started = self._requested_at
        waited = None if started is None else time.monotonic() - started
        return waited * 1e3 if waited is not None and waited > self.timeout_s else None

    def _request(self, tensors: dict[str, np.ndarray], deadline: float, record: bool = True) -> np.ndarray:
        g = self._grpc
        inputs = []
        for t in self.spec.inputs:
            value = tensors[t.name][None]
            inputs.append(g.InferInput(t.name, list(value.shape), g.np_to_triton_dtype(value.dtype)))
            inputs[-1].set_data_from_numpy(value)
        outputs = [g.InferRequestedOutput(t.name) for t in self.spec.outputs]
        started, last = time.monotonic(), None
        with self._lock:
            self._requested_at = started
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PolicyServerError(f"policy server {self.url} gave no chunk for "
                                            f"{(time.monotonic() - started) * 1e3:.0f} ms ({_why(last)})")
                try:
                    result = self._client.infer(self.model, inputs, outputs=outputs, client_timeout=remaining)
                    break
                except Exception as exc:  # noqa: BLE001 - retried until the deadline, reported with the last one
                    last = exc
                    time.sleep(min(RETRY_S, max(0.0, deadline - time.monotonic())))
        finally:
            with self._lock:
                self._requested_at = None
        chunk = self._check(result)
        if not record:
            return chunk
        round_trip = (time.monotonic() - started) * 1e3
        compute, batch = (float(v.flat[0]) if (v := result.as_numpy(name)) is not None and v.size == 1 else None
                          for name in ("compute_ms", "batch"))
        self.round_trip_ms.add(round_trip)
        if compute is not None:
            self.compute_ms.add(compute)
            self.overhead_ms.add(max(round_trip - compute, 0.0))
        if batch is not None:
            self.batch.add(batch)
            self.batch_rows += batch
        return chunk

    def _check(self, result: Any) -> np.ndarray:
        """The response's chunk after its identity, shape, dtype and finiteness were checked."""
        identity = result.as_numpy("identity")
        if identity is None or identity.shape != (1, 32) or identity.tobytes() != self.identity:
            got = "none" if identity is None else identity.tobytes().hex()[:16]
            raise PolicyServerError(f"policy server {self.url} answered for another package: identity {got}, the "
                                    f"local package {self.package.path} is {self.identity.hex()[:16]}")
        chunk = result.as_numpy("chunk")
        want = (1, self.spec.plan_rows, self.action_dim)
        if chunk is None or chunk.dtype != np.float32 or chunk.shape != want:
            got = "no chunk" if chunk is None else f"{chunk.dtype} {chunk.shape}"
            raise PolicyOutputError(f"policy server {self.url} sent {got}, expected float32 {want}")
        finite = np.isfinite(chunk[0])
        if not finite.all():
            row, index = (int(v) for v in np.argwhere(~finite)[0])
            raise PolicyOutputError(f"policy server {self.url} sent a non-finite action for row {row} of the chunk "
                                    f"(action index {index})")
        return chunk[0].copy()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _why(exc: BaseException | None) -> str:
    """One line for a client error (tritonclient's message, else the exception's)."""
    message = getattr(exc, "message", None)
    text = message() if callable(message) else str(exc)
    return " ".join(str(text).split())[:200] or type(exc).__name__


class HoldCounter:
    """Wraps the asynchronous executor itself (inside any goal interpolation, which would hide an empty queue): counts
    its ticks and those with no action, from the first tick on, since the robot is waiting for a chunk from then."""

    def __init__(self, executor: Any):
        self.executor = executor
        self.ticks = self.holds = 0

    def reset(self) -> None:
        self.executor.reset()

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        result = self.executor.step(observation, tick)
        self.ticks += 1
        self.holds += result.action is None
        return result

    def close(self) -> None:
        self.executor.close()


class ServerWatch:
    """Wraps the whole executor of a remote planner (outermost): a lost server or another identity becomes the
    robot's safety reaction, so no goal follows it. `counter` counts the ticks spent waiting for a chunk."""

    def __init__(self, executor: Any, planner: RemotePlanner, robot: Any, counter: HoldCounter):
        self.executor, self.planner, self.robot, self.counter = executor, planner, robot, counter

    def reset(self) -> None:
        self.executor.reset()

    def step(self, observation: Mapping[str, np.ndarray], tick: int) -> StepResult:
        try:
            result = self.executor.step(observation, tick)
            overdue = self.planner.overdue_ms()
            if overdue is not None:
                raise PolicyServerError(f"policy server {self.planner.url} gave no chunk for {overdue:.0f} ms")
        except PolicyServerError as exc:
            self.robot.trip(str(exc))  # the reaction the robot file configures; goals are suppressed from now on
            return StepResult(None, 0, None)
        return result

    def summary(self) -> str:
        p, c = self.planner, self.counter
        if not p.round_trip_ms.count:
            return f"{p.describe()}: no chunk received"
        return (f"{p.describe()}: {p.round_trip_ms.count} chunks, round trip p50 {p.round_trip_ms.percentile(50):.1f} "
                f"/ p99 {p.round_trip_ms.percentile(99):.1f} ms, server compute p50 {p.compute_ms.percentile(50):.1f} "
                f"ms, overhead p50 {p.overhead_ms.percentile(50):.1f} ms; held the last goal {c.holds} of {c.ticks} "
                "policy ticks waiting for a chunk")

    def close(self) -> None:
        self.executor.close()
