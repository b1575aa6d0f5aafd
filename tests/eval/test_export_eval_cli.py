"""`edge-export eval`: `edge eval`'s evaluation on the PyTorch networks (subprocess, small random-weight packages)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import edge


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)


def test_eval_pytorch_and_fp32_agree(diffusion_package, tmp_path):
    rows = []
    for command, extra in ((("export.cli", "eval"), []), (("edge", "eval"), ["--precision", "fp32"])):
        out = tmp_path / f"{command[0]}.json"
        result = run(*command, str(diffusion_package), "--episodes", "3", "--steps", "2", "--quiet",
                     "--json", str(out), *extra)
        assert result.returncode == 0, result.stderr
        rows.append(json.loads(out.read_text()))
    keys = ("successes", "collisions", "left", "right", "mean_steps")
    assert [rows[0][k] for k in keys] == [rows[1][k] for k in keys]
    assert rows[0]["backend"] == "pytorch"


def test_eval_prints_the_pytorch_row(act_package, tmp_path):
    result = run("export.cli", "eval", str(act_package), "--episodes", "2", "--seed", "5",
                 "--checkpoint", str(act_package.parent / "pretrained_model"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["act/pytorch", "2"]


def test_eval_user_errors_are_one_line(act_package, tmp_path):
    for args in (["--steps", "3"], ["--checkpoint", str(tmp_path / "nowhere")]):
        result = run("export.cli", "eval", str(act_package), "--episodes", "1", *args)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: "), args
        assert "Traceback" not in result.stderr


def test_a_package_and_its_checkpoint_moved_together_still_find_each_other(act_package, tmp_path):
    """The manifest records the checkpoint relative to the package, so a copy elsewhere works without --checkpoint."""
    moved = tmp_path / "elsewhere"
    shutil.copytree(act_package.parent, moved)
    package = moved / act_package.name
    assert not Path(json.loads((package / "manifest.json").read_text())["source"]["checkpoint"]).is_absolute()
    result = run("export.cli", "eval", str(package), "--episodes", "1", "--quiet")
    assert result.returncode == 0, result.stderr


def test_the_bundled_demos_name_no_machine_path():
    for manifest in (Path(edge.__file__).parent / "data").glob("demo_*/manifest.json"):
        assert not Path(json.loads(manifest.read_text())["source"]["checkpoint"]).is_absolute(), manifest


def test_another_checkpoint_is_refused_naming_the_option_that_takes_it(act_package, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(act_package.parent / "pretrained_model", other)
    (other / "README.md").write_text("edited")  # another checkpoint: its content hash differs
    result = run("export.cli", "eval", str(act_package), "--episodes", "1", "--quiet", "--checkpoint", str(other))
    assert result.returncode == 2 and "--any-checkpoint" in result.stderr and "verify=False" in result.stderr
    assert "pass verify" not in result.stderr
    result = run("export.cli", "eval", str(act_package), "--episodes", "1", "--quiet", "--checkpoint", str(other),
                 "--any-checkpoint")
    assert result.returncode == 0, result.stderr


def test_eval_under_delay_with_rtc_agrees_on_pytorch_and_onnxruntime(diffusion_package, tmp_path):
    """`edge-export eval` shares --delay-ticks and --merge: the same guided episodes on both."""
    rows = []
    for command, extra in ((("export.cli", "eval"), []), (("edge", "eval"), ["--precision", "fp32"])):
        out = tmp_path / f"{command[0]}.json"
        result = run(*command, str(diffusion_package), "--episodes", "2", "--steps", "2", "--quiet",
                     "--delay-ticks", "3", "--merge", "rtc", "--json", str(out), *extra)
        assert result.returncode == 0, result.stderr
        rows.append(json.loads(out.read_text()))
    assert rows[0]["merge"] == rows[1]["merge"] == "rtc" and rows[0]["delay_ticks"] == 3
    assert [rows[0][k] for k in ("successes", "collisions", "mean_steps", "dropped")] == \
        [rows[1][k] for k in ("successes", "collisions", "mean_steps", "dropped")]
