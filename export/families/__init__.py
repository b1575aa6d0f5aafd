"""Policy families the exporter knows, by LeRobot `type`; each module has `build(ckpt, options)`."""

from __future__ import annotations

import importlib
from types import ModuleType

from export.errors import ExportError

FAMILIES = {"act": "export.families.act", "diffusion": "export.families.diffusion", "vqbet": "export.families.vqbet"}


def family_module(policy_type: str) -> ModuleType:
    if policy_type not in FAMILIES:
        raise ExportError(f"policy type {policy_type!r} cannot be exported (supported: {sorted(FAMILIES)})")
    return importlib.import_module(FAMILIES[policy_type])
