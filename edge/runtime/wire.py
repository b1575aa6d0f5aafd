"""The serving contract: the typed tensors one chunk request and its response carry (`edge serve` ↔ `edge run --server`).

One request = one whole chunk. The robot checks and normalises its observations (so out-of-distribution counts stay
per robot) and sends, per manifest input i, `obs_<i>`: float32 (n_obs_steps, *normalised shape) — the window of its
last n_obs_steps normalised observations, the first one copied to fill it as LeRobot's queues do (images CHW) —
plus `committed` float32 (P, action_dim) padded with zeros and `committed_rows` int32 (1,) (the real-time chunking
planner interface's committed actions, k ≤ P rows), `delay` int32 (1,) and `seed` int64 (1,). The server answers
`chunk` float32 (P, action_dim) in policy units (row 0 = the observation tick), `identity` uint8 (32,) — the
sha256 of the package's manifest.json —, `compute_ms` float32 (1,), the server's compute for the run that chunk
was part of, and `batch` int32 (1,), the rows of the batch Triton formed around it.

The seed's noise stream: `numpy.random.default_rng(seed)` gives the family's randomness in the order the local
runner draws it — Diffusion: the initial noise (chunk_size, action_dim) with `standard_normal(dtype=float32)`, then
one draw of that shape per DDPM step with t > 0; VQ-BeT: its code samples. ACT draws nothing.

Every tensor has a fixed shape and a numeric dtype (KServe v2 over gRPC; nothing is pickled anywhere), so request
and response sizes are known from the manifest and bounded by `MAX_MESSAGE_BYTES`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import PackageError
from edge.runtime.package import Manifest

MAX_MESSAGE_BYTES = 4 << 20  # gRPC's default message limit: a request or response above it is refused at start
SEED_DTYPE, ROWS_DTYPE = np.int64, np.int32


def package_identity(package_path: Path) -> bytes:
    """The package identity: sha256 of its manifest.json (which pins every graph's sha256), 32 raw bytes."""
    return hashlib.sha256((Path(package_path) / "manifest.json").read_bytes()).digest()


def model_name(package_path: str | Path) -> str:
    """The served model's name: the package directory's own name (a symlink's, not its target's)."""
    return Path(os.path.abspath(package_path)).name


def plan_length(manifest: Manifest) -> int:
    """P, the rows of a planned chunk: Diffusion plans from its last observation on (horizon - n_obs_steps + 1)."""
    c = manifest.chunking
    return c.chunk_size - c.n_obs_steps + 1 if manifest.policy_type == "diffusion" else c.chunk_size


@dataclass(frozen=True)
class WireTensor:
    name: str
    shape: tuple[int, ...]  # per request, without the batch axis Triton adds
    dtype: type

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class WireSpec:
    """Every tensor of one package's request and response, from its manifest."""

    inputs: tuple[WireTensor, ...]
    outputs: tuple[WireTensor, ...]
    observation: dict[str, str]  # manifest input name → wire tensor name
    plan_rows: int
    action_dim: int

    def check_size(self, where: str) -> None:
        for kind, tensors in (("request", self.inputs), ("response", self.outputs)):
            size = sum(t.nbytes for t in tensors)
            if size > MAX_MESSAGE_BYTES:
                raise PackageError(f"{where}: one chunk {kind} would be {size} bytes, above the {MAX_MESSAGE_BYTES} "
                                   "bytes a gRPC message may carry; serve a package with smaller inputs")


def wire_spec(manifest: Manifest) -> WireSpec:
    """The request/response tensors for `manifest`."""
    n, p, dim = manifest.chunking.n_obs_steps, plan_length(manifest), manifest.action.dim
    observation, inputs = {}, []
    for i, inp in enumerate(manifest.inputs):
        shape = tuple(inp.shape)
        if inp.kind == "image":  # HWC from the camera, CHW once normalised
            shape = (shape[2], shape[0], shape[1])
        observation[inp.name] = f"obs_{i}"
        inputs.append(WireTensor(f"obs_{i}", (n, *shape), np.float32))
    inputs += [WireTensor("committed", (p, dim), np.float32), WireTensor("committed_rows", (1,), ROWS_DTYPE),
               WireTensor("delay", (1,), ROWS_DTYPE), WireTensor("seed", (1,), SEED_DTYPE)]
    outputs = (WireTensor("chunk", (p, dim), np.float32), WireTensor("identity", (32,), np.uint8),
               WireTensor("compute_ms", (1,), np.float32), WireTensor("batch", (1,), ROWS_DTYPE))
    return WireSpec(tuple(inputs), outputs, observation, p, dim)


def pad_committed(committed: np.ndarray, rows: int, dim: int) -> tuple[np.ndarray, int]:
    """`committed` (k, dim) as a fixed (rows, dim) block and its real row count min(k, rows)."""
    k = min(len(committed), rows)
    block = np.zeros((rows, dim), np.float32)
    block[:k] = committed[:k]
    return block, k


def parse_server_url(url: str) -> tuple[str, bool]:
    """`grpc://host:port` (or `grpcs://` for TLS) → ("host:port" as tritonclient wants it, tls); ValueError if not."""
    scheme, sep, rest = url.partition("://")
    host, colon, port = rest.rpartition(":")
    if not sep or scheme not in ("grpc", "grpcs") or not colon or not host or "/" in rest or not port.isdigit() \
            or not 0 < int(port) < 65536:
        raise ValueError(f"expected grpc://HOST:PORT or grpcs://HOST:PORT, got {url!r}")
    return f"{host}:{int(port)}", scheme == "grpcs"
