"""Diffusion fixtures: the diffusion_cam package with a fused 4-step DDIM graph, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

FUSED_K = 4


@pytest.fixture(scope="session")
def fused_package(lerobot_fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    out = tmp_path_factory.mktemp("packages") / "diffusion_cam_fused"
    export_package(lerobot_fixtures / "diffusion_cam" / "pretrained_model", out,
                   ExportOptions(samples=1, extra={"fused_steps": FUSED_K}), progress=lambda _msg: None)
    return out
