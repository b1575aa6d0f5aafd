"""The robot side imports and runs a policy in an interpreter where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys

BLOCK_TORCH = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, Block())
"""


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_blocker_really_blocks_torch():
    result = run_without_torch("import torch")
    assert result.returncode != 0 and "torch is blocked" in result.stderr


def test_robot_side_imports_every_module_without_torch():
    code = """
import importlib, pkgutil
import edge, firmware_bridge, calibration
for pkg in (edge, firmware_bridge, calibration):
    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if not info.name.endswith(".__main__"):  # running the CLI is not importing
            importlib.import_module(info.name)
print("imported")
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_policy_runs_without_torch(export_fixture, reference_rollout):
    pkg = export_fixture("act_env")
    code = f"""
import numpy as np, edge
policy = edge.load_policy({str(pkg)!r})
action = policy.select_action({{"observation.state": np.zeros(6, np.float32),
                                "observation.environment_state": np.zeros(4, np.float32)}})
print(action.shape, "torch" in __import__("sys").modules)
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["(6,)", "False"]


def test_workstation_commands_without_torch_say_what_to_install(tmp_path):
    """After `pip install .` (no torch): --help works and running says in one line what to install."""
    help_run = run_without_torch("import sys; from export.cli import main; sys.exit(main(['--help']))")
    assert help_run.returncode == 0 and "--out" in help_run.stdout, help_run.stderr
    for code in ("from export.cli import main; sys.exit(main(['ckpt', '--out', %r]))" % str(tmp_path / "o"),
                 "from export.cli import main; sys.exit(main(['eval', 'act']))",
                 "from export.train.__main__ import main; sys.exit(main(['act', '--out', %r]))" % str(tmp_path / "t")):
        result = run_without_torch("import sys\n" + code)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "needs torch" in lines[0] and "pip install torch==" in lines[0], lines
    assert not (tmp_path / "o").exists() and not (tmp_path / "t").exists()
