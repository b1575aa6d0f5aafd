"""The remote planner against the real tritonserver: a chunk is the local runner's, also with 4 robots at once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.errors import PolicyServerError
from edge.robot.remote import RemotePlanner
from edge.runtime.normalize import Normalizer
from tests.serve.conftest import DATA, Server

SEED_MAX = np.iinfo(np.int64).max


def observation(policy, rng: np.random.Generator) -> dict[str, np.ndarray]:  # noqa: ANN001
    return {i.name: (rng.integers(0, 256, i.shape).astype(np.uint8) if i.kind == "image"
                     else rng.uniform(-1, 1, i.shape).astype(np.float32)) for i in policy.package.manifest.inputs}


def local_chunk(local, obs: dict[str, np.ndarray], seed: int) -> np.ndarray:  # noqa: ANN001
    """The local runner's chunk for `obs` after its history, with the wire contract's noise stream for `seed`."""
    c = local.chunking
    if local.policy_type == "diffusion":
        noise = np.random.default_rng(seed).standard_normal((1, c.chunk_size, local.action_dim), dtype=np.float32)
        chunk = local.predict_action_chunk(obs, noise=noise)[c.n_obs_steps - 1:]
        local.observe(obs)  # the history moves on, as the robot's window does
        return chunk
    if local.policy_type == "vqbet":
        local.rng = np.random.default_rng(seed)  # codes drawn from default_rng(seed)
    return local.predict_action_chunk(obs)


def normalized(local, chunk: np.ndarray) -> np.ndarray:  # noqa: ANN001
    m = local.package.manifest
    return Normalizer(m.action.normalization, (m.action.dim,))(chunk)


@pytest.mark.parametrize("name", ["demo_act", "demo_diffusion", "demo_vqbet"])
def test_a_remote_chunk_is_the_local_chunk(server, name):  # noqa: ANN001
    planner = RemotePlanner(DATA / name, server.url, timeout_ms=30_000, seed=11)
    planner.connect()
    seeds, rng = np.random.default_rng(11), np.random.default_rng(3)
    with edge.load_policy(DATA / name, backend="onnxruntime") as local:
        for _ in range(3):  # the history fills, then moves
            obs = observation(local, rng)
            remote = planner.plan(planner.observe(obs), np.zeros((0, local.action_dim), np.float32), 0)
            expected = local_chunk(local, obs, int(seeds.integers(0, SEED_MAX)))
            assert remote.shape == expected.shape
            assert np.abs(normalized(local, remote) - normalized(local, expected)).max() <= 1e-5
    planner.close()


@pytest.fixture(scope="module")
def batched_server(client_module, batched_package):  # noqa: ANN001, ANN201
    """The Diffusion fixture exported with batch graphs (B = 2, 4) on its own server, batching as `server` does."""
    s = Server([batched_package("diffusion_cam")], "--max-batch", "4", "--queue-delay-us", "50000")
    yield s
    s.stop()


def four_robots(url: str, package: Path) -> None:
    """Four robots with different observations and seeds, released together so that Triton batches them: each
    gets the local runner's chunks for its own observations (no cross-talk)."""
    robots, rounds = 4, 4
    barrier = threading.Barrier(robots)
    planners = [RemotePlanner(package, url, timeout_ms=60_000, seed=100 + r) for r in range(robots)]
    for p in planners:
        p.connect()
    with edge.load_policy(package, backend="onnxruntime") as probe:
        observations = [[observation(probe, np.random.default_rng(1000 * r + i)) for i in range(rounds)]
                        for r in range(robots)]
        nothing_committed = np.zeros((0, probe.action_dim), np.float32)
    got: dict[int, list[np.ndarray]] = {}
    errors: list[BaseException] = []

    def robot(r: int) -> None:
        try:
            out = []
            for obs in observations[r]:
                context = planners[r].observe(obs)
                barrier.wait(timeout=60)
                out.append(planners[r].plan(context, nothing_committed, 0))
            got[r] = out
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=robot, args=(r,)) for r in range(robots)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert max(p.batch.max for p in planners) > 1, "Triton formed no batch: the test would not see cross-talk"
    for r in range(robots):
        seeds = np.random.default_rng(100 + r)
        with edge.load_policy(package, backend="onnxruntime") as local:
            for i, obs in enumerate(observations[r]):
                expected = local_chunk(local, obs, int(seeds.integers(0, SEED_MAX)))
                assert np.abs(normalized(local, got[r][i]) - normalized(local, expected)).max() <= 1e-5, (r, i)
    for p in planners:
        p.close()


def test_four_robots_at_once_each_get_their_own_chunks(server):  # noqa: ANN001
    """Rows of a batch one after another on the batch-1 graphs (the demo package has no serve/ batch graphs)."""
    four_robots(server.url, DATA / "demo_diffusion")


def test_four_robots_at_once_on_batch_graphs_each_get_their_own_chunks(batched_server, batched_package):  # noqa: ANN001
    """The batches Triton forms run on the package's batch graphs (B = 2, 4; 3 rows padded to 4)."""
    four_robots(batched_server.url, batched_package("diffusion_cam"))


def test_another_identity_is_refused_at_connect(server, tampered_act: Path):  # noqa: ANN001
    planner = RemotePlanner(tampered_act, server.url, timeout_ms=5_000)
    with pytest.raises(PolicyServerError, match="answered for another package"):
        planner.connect()


def test_a_package_the_server_does_not_serve_is_refused_naming_the_address(server, tmp_path: Path):  # noqa: ANN001
    import shutil

    copy = tmp_path / "not_served"
    shutil.copytree(DATA / "demo_act", copy)
    with pytest.raises(PolicyServerError, match=f"{server.url}.*'not_served'"):
        RemotePlanner(copy, server.url).connect()


class Reply:
    """A response as tritonclient hands it over (`as_numpy(name)`), with the arrays a server could send."""

    def __init__(self, **arrays: np.ndarray):
        self.arrays = arrays

    def as_numpy(self, name: str) -> np.ndarray | None:
        return self.arrays.get(name)


@pytest.mark.parametrize("change, error, match", [
    ({"chunk": np.full((1, 20, 6), np.nan, np.float32)}, "PolicyOutputError", "non-finite action for row 0"),
    ({"chunk": np.zeros((1, 20, 6), np.float64)}, "PolicyOutputError", "expected float32"),
    ({"chunk": np.zeros((1, 19, 6), np.float32)}, "PolicyOutputError", r"expected float32 \(1, 20, 6\)"),
    ({"chunk": None}, "PolicyOutputError", "no chunk"),
    ({"identity": np.zeros((1, 32), np.uint8)}, "PolicyServerError", "answered for another package"),
])
def test_a_bad_response_is_refused(client_module, change, error, match):  # noqa: ANN001
    planner = RemotePlanner(DATA / "demo_act", "grpc://127.0.0.1:1")
    good = {"chunk": np.zeros((1, 20, 6), np.float32),
            "identity": np.frombuffer(planner.identity, np.uint8)[None]}
    assert planner._check(Reply(**good)).shape == (20, 6)
    with pytest.raises(getattr(edge, error, PolicyServerError), match=match):
        planner._check(Reply(**{**good, **change}))
