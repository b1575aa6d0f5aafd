"""`edge check` compares a backend with the export-time PyTorch outputs, and fails when they disagree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from edge.runtime.package import sha256_file


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


def test_check_reports_provenance_and_the_fp16_preflight(tmp_path):
    """The header reads the manifest's source, opset, export-time errors and the typed fp16_preflight section."""
    import edge
    from export.fp16.preflight import preflight

    pkg = tmp_path / "pkg"
    shutil.copytree(Path(edge.__file__).parent / "data" / "demo_act", pkg)
    assert "no preflight" in edge_check(str(pkg)).stdout
    record = preflight(pkg, steps=2, progress=lambda _m: None)
    out = edge_check(str(pkg), "--backend", "onnxruntime").stdout
    assert "opset 17" in out and "sha256 df33f272fb43" in out
    assert f"preflight passed at tolerance 0.02: worst output {record['worst_output_scaled_error']:.2e}" in out
    assert "activations simulated, FP16 range screened with 2x headroom" in out
    export_error = json.loads((pkg / "manifest.json").read_text())["validation"]["export_max_abs_error"]["act"]
    assert next(line for line in out.splitlines() if line.startswith("act ")).split()[4] == f"{export_error:.2e}"


def test_check_and_bench_steps_take_the_bundled_shortcuts_edge_eval_takes():
    result = edge_check("vqbet", "--backend", "onnxruntime")
    assert result.returncode == 0, result.stderr
    assert "edge/data/demo_vqbet" in result.stdout and result.stdout.rstrip().endswith("all outputs within tolerance")
    bench = subprocess.run([sys.executable, "-m", "edge", "bench-steps", "act", "--steps", "10"], capture_output=True,
                           text=True, timeout=120)
    assert bench.returncode == 2 and "demo_act is a 'act' package; bench-steps needs a diffusion one" in bench.stderr
    missing = edge_check("resnet")
    assert missing.returncode == 2 and "no such package directory (or a bundled demo: act, diffusion, vqbet)" in missing.stderr
