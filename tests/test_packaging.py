"""The wheel `pip install .` builds: the runtime's packages and bundled data in it, nothing a checkout accumulates."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from packaging.markers import Marker

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "export", "firmware_bridge", "calibration")


def checkout_files() -> list[str]:
    """What a fresh clone holds: tracked files plus untracked ones git does not ignore (new files of this change)."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the source tree's own files cannot be told from build outputs")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode()
    return [f for f in listed.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build the wheel from a copy of the checkout, as pip does from a clone (PEP 517, setuptools' backend)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in checkout_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                             "-q", "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = (tmp / "dist").glob("edge_policy_runtime-*.whl")
    return zipfile.ZipFile(built)


def test_pyproject_names_the_build_backend():
    text = (ROOT / "pyproject.toml").read_text()
    assert '[build-system]' in text and 'build-backend = "setuptools.build_meta"' in text
    assert '"setuptools>=61"' in text and '"wheel"' in text


def test_wheel_holds_the_packages_and_nothing_else(wheel):
    names = [PurePosixPath(n) for n in wheel.namelist()]
    tops = {n.parts[0] for n in names if not n.parts[0].endswith(".dist-info")}
    assert tops == set(PACKAGES), tops  # no tests/, benchmarks/, examples/, build/ ...
    for n in names:
        assert "__pycache__" not in n.parts and n.suffix not in {".pyc", ".engine", ".plan", ".timing_cache"}, n
        assert not any(p.endswith(".egg-info") for p in n.parts), n
    missing = [f for f in checkout_files() if f.split("/")[0] in PACKAGES and f not in wheel.namelist()]
    assert not missing, missing  # every module and data file of the four packages ships


def test_wheel_holds_the_bundled_data(wheel):
    names = set(wheel.namelist())
    demos = sorted(p.name for p in (ROOT / "edge" / "data").glob("demo_*"))
    assert demos == ["demo_act", "demo_diffusion", "demo_vqbet"]
    for demo in demos:
        manifest = json.loads(wheel.read(f"edge/data/{demo}/manifest.json"))
        files = [g["file"] for g in manifest["graphs"].values()] + [manifest["validation"]["file"]]
        files += [g["file"] for g in (manifest.get("fp16_preflight") or {}).get("graphs", {}).values()]
        for f in files:
            assert f"edge/data/{demo}/{f}" in names, (demo, f)
    for pattern, folder in (("*.json", "edge/data/tensorrt"), ("*.yaml", "edge/data/robots")):
        expected = {f"{folder}/{p.name}" for p in (ROOT / folder).glob(pattern)}
        assert expected and expected <= names, folder


def test_wheel_metadata_keeps_the_platform_marker_and_commands(wheel):
    info = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = wheel.read(info).decode()
    (line,) = [ln for ln in metadata.splitlines() if ln.startswith("Requires-Dist: onnxruntime")]
    marker = Marker(line.split(";", 1)[1])
    linux = {"sys_platform": "linux", "platform_system": "Linux"}
    assert marker.evaluate({**linux, "platform_machine": "x86_64", "platform_release": "6.8.0-45-generic"})
    assert marker.evaluate({**linux, "platform_machine": "aarch64", "platform_release": "6.6.31+rpt-rpi-v8"})
    assert marker.evaluate({**linux, "platform_machine": "aarch64", "platform_release": "6.1.0-28-cloud-arm64"})
    # a Jetson keeps NVIDIA's onnxruntime-gpu: the CPU build would overwrite its module
    assert not marker.evaluate({**linux, "platform_machine": "aarch64", "platform_release": "5.15.136-tegra"})
    entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "edge = edge.cli:main" in entry_points and "edge-export = export.cli:main" in entry_points


def test_gitignore_covers_build_outputs():
    ignored = set((ROOT / ".gitignore").read_text().split())
    assert {"build/", "dist/", "*.egg-info/"} <= ignored
