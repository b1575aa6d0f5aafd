"""Shared test fixtures: where LeRobot's reference policies live, and the hardware-in-the-loop options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEROBOT_FIXTURES = REPO.parent / "shared" / "fixtures" / "lerobot"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dxl-port", default=None, help="serial port of a real Dynamixel chain (else the emulator)")
    parser.addoption("--dxl-ids", default=None, help="comma-separated servo ids on the real chain, e.g. 1,2,3")
    parser.addoption("--fuzz-cases", type=int, default=None,
                     help="cases per fuzz target in tests/fuzz (default: the few hundred CI runs in seconds)")


@pytest.fixture(scope="session", autouse=True)
def _private_model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """ONNX Runtime's optimised-model cache (edge/runtime/backends/ort_cache.py) goes to a temporary directory, not ~/.cache."""
    os.environ["EDGE_CACHE_DIR"] = str(tmp_path_factory.mktemp("edge-cache"))
    # LeRobot's folders (calibration, local datasets: calibration/lerobot_paths.py) never the user's own
    os.environ["HF_LEROBOT_HOME"] = str(tmp_path_factory.mktemp("hf-lerobot-home"))
    os.environ.pop("HF_LEROBOT_CALIBRATION", None)


@pytest.fixture(scope="session")
def lerobot_fixtures() -> Path:
    """../shared/fixtures/lerobot: policies built and rolled out by LeRobot 0.4.4 itself."""
    if not LEROBOT_FIXTURES.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"LeRobot reference fixtures not found at {LEROBOT_FIXTURES} (required in CI)")
        pytest.skip(f"LeRobot reference fixtures not found at {LEROBOT_FIXTURES}")
    return LEROBOT_FIXTURES


@pytest.fixture(scope="session")
def export_fixture(lerobot_fixtures: Path, tmp_path_factory: pytest.TempPathFactory):
    """`export_fixture("act_cam")` → path of that LeRobot fixture exported once per test session."""
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    done: dict[str, Path] = {}

    def _export(case: str) -> Path:
        if case not in done:
            out = tmp_path_factory.mktemp("packages") / case
            export_package(lerobot_fixtures / case / "pretrained_model", out, ExportOptions(samples=2),
                           progress=lambda _msg: None)
            done[case] = out
        return done[case]

    return _export


@pytest.fixture(scope="session")
def reference_rollout(lerobot_fixtures: Path):
    """`reference_rollout("act_cam")` → dict of LeRobot's rollout arrays (obs.<t>.<feature>, action.<t>, ...)."""
    from safetensors.numpy import load_file

    return lambda case: load_file(str(lerobot_fixtures / case / "reference.safetensors"))
