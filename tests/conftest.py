"""Shared test fixtures: where LeRobot's reference policies live, and the hardware-in-the-loop options."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LEROBOT_FIXTURES = REPO.parent / "shared" / "fixtures" / "lerobot"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--dxl-port", default=None, help="serial port of a real Dynamixel chain (else the emulator)")
    parser.addoption("--dxl-ids", default=None, help="comma-separated servo ids on the real chain, e.g. 1,2,3")


@pytest.fixture(scope="session")
def lerobot_fixtures() -> Path:
    """../shared/fixtures/lerobot: policies built and rolled out by LeRobot 0.4.4 itself."""
    if not LEROBOT_FIXTURES.is_dir():
        pytest.skip(f"LeRobot reference fixtures not found at {LEROBOT_FIXTURES}")
    return LEROBOT_FIXTURES
