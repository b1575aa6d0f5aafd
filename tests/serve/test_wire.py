"""The wire contract and the serving options, without a server: what is refused at parse time, and the sizes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.runtime.package import load_package
from edge.runtime.wire import MAX_MESSAGE_BYTES, package_identity, parse_server_url, plan_length, wire_spec
from tests.serve.conftest import DATA, ROOT


@pytest.mark.parametrize("url, expected", [("grpc://127.0.0.1:8001", ("127.0.0.1:8001", False)),
                                           ("grpcs://gpu-box:443", ("gpu-box:443", True)),
                                           ("grpc://[::1]:8001", ("[::1]:8001", False))])
def test_server_urls(url, expected):  # noqa: ANN001
    assert parse_server_url(url) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "http://host:8000", "grpc://host", "grpc://host:0",
                                 "grpc://host:99999", "grpc://host:8001/models", "grpc://:8001"])
def test_bad_server_urls_are_refused(url):  # noqa: ANN001
    with pytest.raises(ValueError, match="grpc://HOST:PORT"):
        parse_server_url(url)


def test_the_spec_follows_the_manifest():
    m = load_package(DATA / "demo_vqbet").manifest
    spec = wire_spec(m)
    by_name = {t.name: t for t in spec.inputs}
    assert by_name["obs_1"].shape == (m.chunking.n_obs_steps, 3, 48, 48)  # the camera's HWC as CHW
    assert by_name["committed"].shape == (plan_length(m), m.action.dim)
    diffusion = load_package(DATA / "demo_diffusion").manifest
    assert plan_length(diffusion) == diffusion.chunking.chunk_size - diffusion.chunking.n_obs_steps + 1
    assert sum(t.nbytes for t in spec.inputs) < MAX_MESSAGE_BYTES


def test_identity_is_the_manifest_hash(tmp_path):  # noqa: ANN001
    import hashlib

    assert package_identity(DATA / "demo_act") == hashlib.sha256((DATA / "demo_act" / "manifest.json").read_bytes()).digest()


@pytest.mark.parametrize("args, message", [
    (["run", "--robot", "koch", "--policy", "p", "--server", "localhost:8001"], "grpc://HOST:PORT"),
    (["run", "--robot", "koch", "--policy", "p", "--server", "grpc://h:1", "--server-timeout-ms", "0"], "> 0"),
    (["run", "--robot", "koch", "--policy", "p", "--server", "grpc://h:1", "--server-timeout-ms", "nan"], "> 0"),
    (["serve", "p", "--max-batch", "0"], "argument --max-batch: must be an integer in 1..64"),
    (["serve", "p", "--queue-delay-us", "-1"], "argument --queue-delay-us: must be an integer in 0..1000000"),
    (["serve", "p", "--tls-cert", "/nonexistent.pem"], "no such file"),
])
def test_options_are_refused_at_parse_time(args, message):  # noqa: ANN001
    result = subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_a_package_served_twice_under_one_name_is_refused(tmp_path):  # noqa: ANN001
    import shutil

    shutil.copytree(DATA / "demo_act", tmp_path / "demo_act")
    result = subprocess.run([sys.executable, "-m", "edge", "serve", str(DATA / "demo_act"), str(tmp_path / "demo_act"),
                             "--write-repository", str(tmp_path / "repo")], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 2 and "share a directory name" in result.stderr
    assert not (tmp_path / "repo").exists()
