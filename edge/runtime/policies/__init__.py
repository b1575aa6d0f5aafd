"""Policy runners by manifest `policy_type`; each module registers one PolicyRunner subclass."""

from __future__ import annotations

import importlib

from edge.errors import PackageError
from edge.runtime.policies.base import PolicyRunner

RUNNERS = {
    "act": "edge.runtime.policies.act:ACTRunner",
    "diffusion": "edge.runtime.policies.diffusion:DiffusionRunner",
    "vqbet": "edge.runtime.policies.vqbet:VQBeTRunner",
}


def runner_class(policy_type: str) -> type[PolicyRunner]:
    if policy_type not in RUNNERS:
        raise PackageError(f"policy type {policy_type!r} is not supported by this runtime "
                           f"(supported: {sorted(RUNNERS)})")
    module, cls = RUNNERS[policy_type].split(":")
    return getattr(importlib.import_module(module), cls)
