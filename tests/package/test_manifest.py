"""The one typed loader: every entry point refuses the same bad manifest with the same message naming the field."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.cli import main as edge_main
from edge.runtime.package import MANIFEST_VERSION, load_package, sha256_file
from export.fp16.__main__ import main as fp16_main

DATA = Path(edge.__file__).parent / "data"
V1 = Path(__file__).parent / "v1"


@pytest.fixture
def bundled_copy(tmp_path):
    """`bundled_copy("act")`: a writable copy of the bundled demo package."""
    def _copy(family: str) -> Path:
        dst = tmp_path / f"demo_{family}"
        shutil.copytree(DATA / f"demo_{family}", dst)
        return dst
    return _copy


def edit_manifest(pkg: Path, edit) -> None:  # noqa: ANN001
    data = json.loads((pkg / "manifest.json").read_text())
    edit(data)
    (pkg / "manifest.json").write_text(json.dumps(data))


def widen_action(m: dict, dim: int) -> None:
    m["action"]["dim"] = dim
    for stat, values in m["action"]["normalization"]["stats"].items():
        values.extend([values[-1]] * (dim - len(values)))


def set_stat(feature: int, stat: str, index: int, value: float):  # noqa: ANN201
    return lambda m: m["inputs"][feature]["normalization"]["stats"][stat].__setitem__(index, value)


BAD_MANIFESTS = [
    ("act", lambda m: m.update(policy_type="pi0"), r"'policy_type' is 'pi0'"),
    ("act", lambda m: widen_action(m, 7), r"'graphs.act.outputs\[0\].shape' \(action\) is \[1, 20, 6\].*'action.dim' is 7"),
    ("act", lambda m: m["inputs"][0]["normalization"]["stats"]["mean"].pop(),
     r"'inputs\[0\].normalization' \(observation.state\): statistic 'mean' has 5 value\(s\), the feature has 6"),
    ("act", lambda m: m["inputs"][0]["normalization"]["stats"].pop("std"), r"MEAN_STD normalisation needs.*\['std'\]"),
    ("act", set_stat(0, "std", 1, float("nan")), r"\(observation.state\): statistic 'std' is not finite in float32.* at index \[1\]"),
    ("act", set_stat(0, "std", 2, 0.0), r"\(observation.state\): statistic 'std' is 0.0 at index \[2\]"),
    ("act", set_stat(1, "min", 0, 9.0), r"\(observation.environment_state\): statistics 'min'/'max' are 9.0/.*index \[0\]"),
    ("act", lambda m: m["chunking"].update(n_action_steps=50), r"'chunking' is inconsistent.*n_action_steps=50"),
    ("act", lambda m: m["chunking"].update(temporal_ensemble_coeff=0.01), r"'chunking.n_action_steps' is 10.*must be 1"),
    ("act", lambda m: m["chunking"].update(chunk_size="20"), r"'chunking.chunk_size' must be an integer, got '20'"),
    ("act", lambda m: m["inputs"][0].update(dtype="float64"), r"'inputs\[0\].dtype' \(observation.state\).*float32"),
    ("act", lambda m: m["graphs"]["act"].update(file="../act.onnx"), r"'graphs.act.file' is '../act.onnx'.*inside"),
    ("act", lambda m: m["validation"].update(tolerance=-1), r"'validation.tolerance' is -1.0"),
    ("act", lambda m: m.update(fp16_preflight={"ok": True}), r"'fp16_preflight' is missing key\(s\)"),
    ("diffusion", lambda m: m["policy"].pop("scheduler"), r"'policy' is missing key\(s\) \['scheduler'\]"),
    ("diffusion", lambda m: m["policy"]["scheduler"].update(beta_schedule="sigmoid"),
     r"'policy.scheduler': scheduler beta_schedule 'sigmoid'"),
    ("diffusion", lambda m: m["policy"].update(sampler="euler"), r"'policy.sampler' is 'euler'"),
    ("diffusion", lambda m: m["policy"].update(num_inference_steps=1000), r"'policy.num_inference_steps' is 1000.*1..100"),
    ("diffusion", lambda m: m["policy"].update(global_cond_dim=20), r"'policy' has unknown key\(s\) \['global_cond_dim'\]"),
    ("vqbet", lambda m: m["policy"].update(rvq_layers=2), r"'policy' has unknown key\(s\) \['rvq_layers'\]"),
    ("vqbet", lambda m: m["policy"].update(codebook_size=17), r"dimension 2 is 16, but manifest field 'policy.codebook_size'"),
    ("vqbet", lambda m: m["policy"].update(image_feature="observation.images.side"), r"'policy.image_feature'"),
    ("vqbet", lambda m: m["policy"].update(bet_softmax_temperature=0), r"'policy.bet_softmax_temperature' is 0.0"),
]


@pytest.mark.parametrize("family, edit, message", BAD_MANIFESTS)
def test_every_entry_point_refuses_with_the_same_message(bundled_copy, capsys, family, edit, message):
    pkg = bundled_copy(family)
    edit_manifest(pkg, edit)
    with pytest.raises(edge.PackageError, match=message):
        edge.load_policy(pkg)
    for command in (["check", str(pkg)], ["eval", str(pkg), "--episodes", "1"], ["build", str(pkg)]):
        assert edge_main(command) == 2, command
        err = capsys.readouterr().err
        assert err.startswith("error: manifest field") and err.count("\n") == 1, (command, err)
        assert re.search(message, err), (command, err)


def test_damaged_validation_samples_are_refused_before_anything_is_written(bundled_copy, capsys):
    pkg = bundled_copy("act")
    samples = pkg / "validation.npz"
    samples.write_bytes(samples.read_bytes()[:-100])  # truncated after export
    with pytest.raises(edge.PackageError, match="validation samples.*does not match the manifest's sha256"):
        load_package(pkg)
    edit_manifest(pkg, lambda m: m["validation"].update(sha256=sha256_file(samples)))  # a consistent, broken package
    before = {p.name: p.read_bytes() for p in pkg.iterdir()}
    assert edge_main(["check", str(pkg)]) == 2
    assert "validation samples" in capsys.readouterr().err
    assert fp16_main([str(pkg)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in pkg.iterdir()} == before  # no fp16/ folder, manifest untouched


def test_validation_samples_must_match_the_graphs(bundled_copy):
    pkg = bundled_copy("act")
    with np.load(pkg / "validation.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["act/1/in/observation.state"] = arrays["act/1/in/observation.state"][:, :5]
    np.savez(pkg / "validation.npz", **arrays)
    edit_manifest(pkg, lambda m: m["validation"].update(sha256=sha256_file(pkg / "validation.npz")))
    with pytest.raises(edge.PackageError, match=r"act/1/in/observation.state is float32 \[1, 5\].*\[1, 6\]"):
        load_package(pkg).validation_samples()


@pytest.mark.parametrize("family", ["diffusion", "vqbet"])
def test_older_manifest_is_refused_then_migrated(bundled_copy, capsys, family):
    pkg = bundled_copy(family)
    old = json.loads((V1 / f"demo_{family}_manifest.json").read_text())
    (pkg / "manifest.json").write_text(json.dumps(old))
    files = {p.name: p.read_bytes() for p in pkg.iterdir() if p.name != "manifest.json"}
    with pytest.raises(edge.PackageError, match=f"manifest version 1.*edge migrate {pkg}.*or re-export"):
        edge.load_policy(pkg)

    assert edge_main(["migrate", str(pkg)]) == 0
    assert "manifest version 1 -> 2 (graphs unchanged)" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in pkg.iterdir() if p.name != "manifest.json"} == files
    new = json.loads((pkg / "manifest.json").read_text())
    assert new["version"] == MANIFEST_VERSION == 2
    assert new["validation"]["sha256"] == hashlib.sha256(files["validation.npz"]).hexdigest()
    dead = {"diffusion": {"global_cond_dim"}, "vqbet": {"rvq_layers", "n_action_pred_token"}}[family]
    assert set(old["policy"]) - set(new["policy"]) == dead and "units" in old["action"] and "units" not in new["action"]
    for key in ("inputs", "chunking", "graphs", "source"):
        assert new[key] == old[key]

    policy, reference = edge.load_policy(pkg, seed=0), edge.load_policy(DATA / f"demo_{family}", seed=0)
    obs = {i.name: (np.full(i.shape, 80, np.uint8) if i.kind == "image" else np.zeros(i.shape, np.float32))
           for i in policy.package.manifest.inputs}
    np.testing.assert_array_equal(policy.select_action(obs), reference.select_action(obs))
    assert edge_main(["migrate", str(pkg)]) == 0 and "manifest version 2" in capsys.readouterr().out


def test_migration_refuses_without_writing(bundled_copy, capsys):
    pkg = bundled_copy("diffusion")
    (pkg / "manifest.json").write_text((V1 / "demo_diffusion_manifest.json").read_text())
    (pkg / "validation.npz").unlink()
    before = (pkg / "manifest.json").read_bytes()
    assert edge_main(["migrate", str(pkg)]) == 2
    assert "validation.npz are missing" in capsys.readouterr().err
    assert (pkg / "manifest.json").read_bytes() == before and [p.name for p in pkg.iterdir() if p.name.startswith(".")] == []


def test_newer_manifest_asks_for_an_upgrade(bundled_copy):
    pkg = bundled_copy("act")
    edit_manifest(pkg, lambda m: m.update(version=3))
    with pytest.raises(edge.PackageError, match="unknown manifest version 3.*upgrade edge"):
        load_package(pkg)


def test_the_dataset_section_is_optional_and_range_checked(bundled_copy):
    pkg = bundled_copy("act")
    assert load_package(pkg).manifest.dataset.fps == 20  # the bundled demos record the task's rate
    edit_manifest(pkg, lambda m: m.pop("dataset"))
    assert load_package(pkg).manifest.dataset is None  # older packages load unchanged
    for value, words in ((0, "'dataset.fps' is 0; it must be within 1..1000"),
                         (2.5, "'dataset.fps' must be an integer"), ("20", "'dataset.fps' must be an integer")):
        edit_manifest(pkg, lambda m: m.update(dataset={"fps": value}))
        with pytest.raises(edge.PackageError, match=re.escape(words)):
            load_package(pkg)
    edit_manifest(pkg, lambda m: m.update(dataset={"fps": 30, "action_names": ["a", "b"]}))
    with pytest.raises(edge.PackageError, match=re.escape("'dataset.action_names' has 2 names for 6 values")):
        load_package(pkg)
