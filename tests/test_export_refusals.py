"""The exporter refuses what the runtime would refuse, names it, and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from export.cli import main as export_main
from export.errors import CheckpointError, ExportError
from export.families.base import ExportOptions
from export.pipeline import export_package

PRE = "policy_preprocessor_step_3_normalizer_processor.safetensors"
POST = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"


@pytest.fixture
def checkpoint(lerobot_fixtures, tmp_path):
    """`checkpoint("act_env")`: a writable copy of a LeRobot fixture's pretrained_model."""
    def _copy(case: str) -> Path:
        dst = tmp_path / "ckpt" / case
        shutil.copytree(lerobot_fixtures / case / "pretrained_model", dst)
        return dst
    return _copy


def edit_stats(ckpt: Path, file: str, key: str, index: int, value: float) -> None:
    stats = load_file(str(ckpt / file))
    stats[key] = stats[key].copy()
    stats[key].reshape(-1)[index] = value
    save_file(stats, str(ckpt / file))


def refuses(ckpt: Path, out: Path, error: type, message: str, options: ExportOptions | None = None) -> None:
    with pytest.raises(error, match=message):
        export_package(ckpt, out, options or ExportOptions(samples=1), progress=lambda _m: None)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []  # no package, no temporary directory


@pytest.mark.parametrize("file, key, index, value, message", [
    (PRE, "observation.state.std", 3, float("nan"),
     r"statistics of 'observation.state': statistic 'std' is not finite in float32.* at index \[3\]"),
    (PRE, "observation.state.std", 1, 0.0, r"'observation.state': statistic 'std' is 0.0 at index \[1\]"),
    (PRE, "observation.environment_state.min", 2, 50.0,
     r"'observation.environment_state': statistics 'min'/'max' are 50.0/.* at index \[2\]"),
])
def test_degenerate_statistics_are_named(checkpoint, tmp_path, file, key, index, value, message):
    ckpt = checkpoint("act_env")
    edit_stats(ckpt, file, key, index, value)
    if key.startswith("observation"):
        edit_stats(ckpt, POST, key, index, value)  # both files hold every statistic: keep them agreeing
    refuses(ckpt, tmp_path / "out" / "pkg", CheckpointError, message)


def test_processor_files_must_agree(checkpoint, tmp_path, capsys):
    ckpt = checkpoint("act_env")
    edit_stats(ckpt, POST, "action.mean", 2, 0.5)
    refuses(ckpt, tmp_path / "out" / "pkg", CheckpointError,
            f"{PRE} and {POST} disagree on statistic 'mean' of 'action' \\(index 2: .* vs 0.5\\)")
    assert export_main([str(ckpt), "--out", str(tmp_path / "out" / "pkg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "disagree" in err[-1] and "Traceback" not in "".join(err)


def test_inconsistent_chunking_is_refused_before_any_graph(checkpoint, tmp_path):
    ckpt = checkpoint("act_env")
    config = json.loads((ckpt / "config.json").read_text())
    config["n_action_steps"] = 50  # chunk_size is 20: every loader would refuse the package
    (ckpt / "config.json").write_text(json.dumps(config))
    refuses(ckpt, tmp_path / "out" / "pkg", CheckpointError,
            r"config.json gives a package the runtime would refuse: .*'chunking' is inconsistent.*n_action_steps=50")


def test_the_package_is_loaded_before_it_is_committed(checkpoint, tmp_path):
    """A value only the loader checks (VQ-BeT's softmax temperature) still stops the export, after the graphs."""
    ckpt = checkpoint("vqbet_cam")
    config = json.loads((ckpt / "config.json").read_text())
    config["bet_softmax_temperature"] = 0.0
    (ckpt / "config.json").write_text(json.dumps(config))
    refuses(ckpt, tmp_path / "out" / "pkg", ExportError,
            r"the exported package would not load: .*manifest field 'policy.bet_softmax_temperature' is 0.0")


def test_a_valid_export_still_passes(checkpoint, tmp_path):
    out = tmp_path / "out" / "pkg"
    export_package(checkpoint("act_env"), out, ExportOptions(samples=1), progress=lambda _m: None)
    assert (out / "manifest.json").is_file() and np.load(out / "validation.npz").files
