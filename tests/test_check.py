"""`edge check` compares a backend with the export-time PyTorch outputs, and fails when they disagree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np

from edge.package import sha256_file


def edge_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "check", *args], capture_output=True, text=True, timeout=120)


def test_check_passes_on_an_exported_fixture(export_fixture):
    result = edge_check(str(export_fixture("act_cam")), "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("act "))
    assert float(line.split()[3]) < 1e-4 and line.endswith("ok")


def test_check_fails_when_the_samples_disagree(export_fixture, tmp_path):
    pkg = tmp_path / "pkg"
    shutil.copytree(export_fixture("act_env"), pkg)
    with np.load(pkg / "validation.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["act/0/out/action"] = arrays["act/0/out/action"] + 0.01  # as if the graph computed something else
    np.savez(pkg / "validation.npz", **arrays)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["validation"]["sha256"] = sha256_file(pkg / "validation.npz")  # a consistent package, wrong samples
    (pkg / "manifest.json").write_text(json.dumps(manifest))
    result = edge_check(str(pkg))
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "1 output(s) out of tolerance" in result.stdout
