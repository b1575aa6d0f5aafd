"""The runtime's table of policy families: manifest `policy_type` → its `policy` section class and its runner.

Everything on the robot side that lists the families reads FAMILIES. The section classes are the package format's
(POLICY_SECTIONS, edge/runtime/package/policy_sections.py: the format is parsed below the runners, so it keeps that
half itself and this table reads it); each runner names its `policy_type`. A new family adds its runner below. The
exporter's table (export/families/__init__.py) has the same keys: tests/test_policy_families.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import PackageError
from edge.runtime.package import POLICY_SECTIONS
from edge.runtime.policies.act import ACTRunner
from edge.runtime.policies.base import PolicyRunner
from edge.runtime.policies.diffusion import DiffusionRunner
from edge.runtime.policies.vqbet import VQBeTRunner


@dataclass(frozen=True)
class Family:
    """One policy family on the robot: the manifest `policy` section it reads and the runner that runs it."""

    section: type
    runner: type[PolicyRunner]


FAMILIES: dict[str, Family] = {runner.policy_type: Family(POLICY_SECTIONS[runner.policy_type], runner)
                               for runner in (ACTRunner, DiffusionRunner, VQBeTRunner)}


def runner_class(policy_type: str) -> type[PolicyRunner]:
    """The runner of a manifest's `policy_type`; PackageError naming the supported ones for any other."""
    if policy_type not in FAMILIES:
        raise PackageError(f"policy type {policy_type!r} is not supported by this runtime "
                           f"(supported: {sorted(FAMILIES)})")
    return FAMILIES[policy_type].runner
