"""Export's table of policy families by LeRobot `type`: each one's exporter and its reach-task trainer.

Everything on the workstation side that lists the families reads FAMILIES. An exporter (export/families/<type>.py)
has `build(ckpt, options) -> FamilyExport`; a trainer (export/train/<type>.py) has IMAGES and `train_policy`. Both
need torch, so each is imported when asked for: the names alone load nothing, for parsers and refusals on a
robot-side install. The runtime's table (edge/runtime/policies/__init__.py) has the same keys:
tests/test_policy_families.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from export.errors import ExportError


def _act_exporter() -> ModuleType:
    from export.families import act
    return act


def _act_trainer() -> ModuleType:
    from export.train import act
    return act


def _diffusion_exporter() -> ModuleType:
    from export.families import diffusion
    return diffusion


def _diffusion_trainer() -> ModuleType:
    from export.train import diffusion
    return diffusion


def _vqbet_exporter() -> ModuleType:
    from export.families import vqbet
    return vqbet


def _vqbet_trainer() -> ModuleType:
    from export.train import vqbet
    return vqbet


@dataclass(frozen=True)
class Family:
    """One policy family on the workstation: how to import its exporter and its trainer."""

    exporter: Callable[[], ModuleType]
    trainer: Callable[[], ModuleType]


FAMILIES: dict[str, Family] = {
    "act": Family(_act_exporter, _act_trainer),
    "diffusion": Family(_diffusion_exporter, _diffusion_trainer),
    "vqbet": Family(_vqbet_exporter, _vqbet_trainer),
}


def known_family(policy_type: str) -> Family:
    """The family of a checkpoint's `type`; ExportError naming the exportable ones for any other."""
    if policy_type not in FAMILIES:
        raise ExportError(f"policy type {policy_type!r} cannot be exported (supported: {sorted(FAMILIES)})")
    return FAMILIES[policy_type]
