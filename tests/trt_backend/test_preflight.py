"""FP16 preflight on every exported LeRobot fixture: FP16 copies written, errors measured, manifest still valid."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from edge.runtime.package import load_package, sha256_file
from export.cli import main as export_main
from export.fp16.__main__ import main as fp16_main
from export.fp16.preflight import preflight

CASES = ["act_env", "act_cam", "diffusion_cam", "vqbet_cam"]


@pytest.mark.parametrize("case", CASES)
def test_preflight_records_small_errors(package_copy, case):
    path = package_copy(case)
    before = json.loads((path / "manifest.json").read_text())
    record = preflight(path, steps=4, progress=lambda _m: None)

    package = load_package(path)  # graph sha256s still verify: the FP32 graphs were not touched
    assert dataclasses.asdict(package.manifest.fp16_preflight) == json.loads(json.dumps(record))
    assert {k: v for k, v in json.loads((path / "manifest.json").read_text()).items() if k != "fp16_preflight"} == \
        {k: v for k, v in before.items() if k != "fp16_preflight"}
    assert record["ok"], record
    assert set(record["graphs"]) == set(package.manifest.graphs)
    for name, info in record["graphs"].items():
        assert sha256_file(path / info["file"]) == info["sha256"]
        assert info["conversion"]["fp16_nodes"] > 0
        assert set(info["outputs"]) == {t.name for t in package.manifest.graphs[name].outputs}
        for err in info["outputs"].values():
            assert 0 <= err["scaled"] < 5e-3  # FP16 storage error, not a broken graph
    assert [r["step"] for r in record["steps"]] == list(range(4))
    assert all(np.isfinite(r["max_abs"]) and r["max_abs_normalized"] < 2e-2 for r in record["steps"])


def test_failing_tolerance_is_reported(package_copy, capsys):
    path = package_copy("act_env")
    assert fp16_main([str(path), "--steps", "2", "--tolerance", "1e-9"]) == 1
    out = capsys.readouterr().out
    assert "FAIL at tolerance 1e-09" in out and "act" in out
    assert load_package(path).manifest.fp16_preflight.ok is False


def test_export_with_fp16_check(lerobot_fixtures, tmp_path, capsys):
    out = tmp_path / "pkg"
    code = export_main([str(lerobot_fixtures / "act_env" / "pretrained_model"), "--out", str(out), "--samples", "1",
                        "--fp16-check"])
    assert code == 0
    assert "PASS" in capsys.readouterr().out
    record = load_package(out).manifest.fp16_preflight
    assert record.ok and (out / record.graphs["act"].file).is_file()


def test_bad_package_is_a_clean_error(tmp_path, capsys):
    assert fp16_main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_corrupt_validation_samples_write_nothing(package_copy, capsys):
    path = package_copy("act_env")
    (path / "validation.npz").write_bytes(b"not a zip archive")
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert fp16_main([str(path), "--steps", "1"]) == 2
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before  # no fp16/, no staging, same manifest


def test_a_record_from_before_the_range_screen_still_loads(package_copy):
    """The new fields are optional: a preflight record without them (older packages) loads unchanged."""
    path = package_copy("act_env")
    preflight(path, steps=1, progress=lambda _m: None)
    manifest = json.loads((path / "manifest.json").read_text())
    record = manifest["fp16_preflight"]
    assert record["range_headroom"] == 2.0 and record["graphs"]["act"]["range"]["tensors"] > 0
    for key in ("activations", "range_headroom"):
        del record[key]
    del record["graphs"]["act"]["range"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = load_package(path).manifest.fp16_preflight
    assert old.range_headroom is None and old.activations is None and old.graphs["act"].range is None
    assert old.ok and old.graphs["act"].outputs["action"].scaled == record["graphs"]["act"]["outputs"]["action"]["scaled"]
