"""TensorRT-side tests that need no TensorRT: packages copied per test, Python subprocesses with modules absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU_MODULES = ("tensorrt", "pycuda", "cuda")


@pytest.fixture
def package_copy(export_fixture: Callable[[str], Path], tmp_path: Path) -> Callable[[str], Path]:
    """`package_copy("act_env")` → a private copy of the exported fixture (tests here rewrite manifests)."""
    return lambda case: Path(shutil.copytree(export_fixture(case), tmp_path / case))


def _run_python(code: str, block: tuple[str, ...] = GPU_MODULES,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where the `block`ed modules cannot be imported (None in sys.modules)."""
    prelude = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
    environ = {**os.environ, "PYTHONPATH": "", **(env or {})}
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess]:
    """Fixture form of `_run_python` (test modules here are not a package, so they cannot import conftest)."""
    return _run_python


@pytest.fixture
def edge_cli() -> Callable[..., tuple[int, str]]:
    """`edge_cli("build", pkg)` → (exit status, stderr + stdout) of `edge ...` in a fresh interpreter."""
    def run(*args: str, **kwargs) -> tuple[int, str]:
        proc = _run_python(f"from edge.cli import main\nsys.exit(main({list(args)!r}))", **kwargs)
        return proc.returncode, proc.stderr + proc.stdout
    return run

