"""`edge eval` as a user runs it (subprocess), on a small random-weight package."""

from __future__ import annotations

import json
import subprocess
import sys


def edge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=120)


def test_eval_prints_the_table(act_package, tmp_path):
    out = tmp_path / "r.json"
    result = edge("eval", str(act_package), "--episodes", "3", "--seed", "5", "--json", str(out))
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[:3] == ["configuration", "episodes", "success"] and "left" in header and "collisions" in header
    assert row.split()[:2] == ["act/default", "3"]
    assert "episode 3/3" in result.stderr
    data = json.loads(out.read_text())
    assert data["episodes"] == 3 and abs(data["left"] + data["right"] - 1) < 1e-9


def test_eval_user_errors_are_one_line(act_package):
    for args in (["--steps", "3"], ["--precision", "fp16"], ["--pytorch", "--precision", "fp16"]):
        result = edge("eval", str(act_package), "--episodes", "1", *args)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: "), args
        assert "Traceback" not in result.stderr


def test_pytorch_moved_to_the_workstation_cli(act_package):
    """The robot-side CLI never imports export: --pytorch and --checkpoint still parse and say where they went."""
    for args in (["--pytorch"], ["--pytorch", "--checkpoint", "ckpt"], ["--checkpoint", "ckpt"]):
        result = edge("eval", str(act_package), "--episodes", "1", *args)
        assert result.returncode == 2, args
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert "moved to the workstation CLI: edge-export eval PACKAGE" in result.stderr, result.stderr


def test_eval_under_delay_writes_the_closed_loop_keys(tmp_path):
    out = tmp_path / "r.json"
    result = edge("eval", "act", "--episodes", "3", "--delay-ticks", "4", "--merge", "weighted", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[0] == "act/default/D=4/weighted"
    data = json.loads(out.read_text())
    assert data["execution"] == "asynchronous" and data["delay_ticks"] == 4 and data["merge"] == "weighted"
    assert set(data["seams"]) == {"count", "jump_p95", "jump_max"} and data["seams"]["count"] > 0
    assert data["holding_share"] > 0  # the first chunk arrives 4 ticks in: the arm holds until then
    for key in ("success_rate", "jerk_rms", "dropped", "collisions", "timeouts"):
        assert key in data, key


def test_eval_delay_options_are_refused_with_the_rules_that_apply():
    result = edge("eval", "act", "--episodes", "1", "--delay-ticks", "2", "--merge", "rtc")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--merge rtc does not apply to a act policy; its rules: latest, average, weighted, ensemble" in result.stderr
    result = edge("eval", "act", "--episodes", "1", "--merge", "average")
    assert result.returncode == 2 and "give --delay-ticks D as well" in result.stderr
    result = edge("eval", "act", "--episodes", "1", "--delay-ticks", "-1")
    assert result.returncode == 2 and "--delay-ticks: must be an integer >= 0" in result.stderr
