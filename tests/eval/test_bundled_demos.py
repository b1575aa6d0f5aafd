"""The packages `edge demo` ships: one per family the runtime runs, intact, and doing the reach task closed-loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import CLIError
from edge.runtime.backends import get_backend
from edge.runtime.package import load_package
from edge.runtime.policies import FAMILIES, runner_class
from edge.runtime.validation import check_package
from edge.sim.demo_packages import bundled, resolve_package
from edge.sim.evaluate import evaluate, runner_options

EPISODES = 20
SEED = 7000  # scenes the packages were neither selected nor reported on (validation 2000, RESULTS 1000)
# Closed-loop success the shipped packages must reach on EPISODES scenes: well below what the 200-episode
# benchmark measured (benchmarks/RESULTS.md, "eval"), so a sound package passes and a broken one does not.
MIN_SUCCESS = {"act": 0.7, "diffusion": 0.7, "vqbet": 0.7}  # by package name
NAMES = [package.name for package in bundled()]


def test_every_family_has_a_bundled_package():
    """The list is of packages found on disk; each family the runtime runs is among their manifests, once."""
    families = sorted(load_package(package.path).manifest.policy_type for package in bundled())
    assert families == sorted(FAMILIES)


def test_a_bundled_name_resolves_and_a_wrong_one_is_refused_naming_the_choices(tmp_path):
    assert resolve_package("act") == next(p.path for p in bundled() if p.name == "act")
    assert resolve_package(str(tmp_path)) == tmp_path  # a directory is taken as it is
    with pytest.raises(CLIError, match="no such package directory.*act"):
        resolve_package("no-such-package")


@pytest.mark.parametrize("name", NAMES)
def test_bundled_package_passes_its_self_check(name):
    package = load_package(resolve_package(name))  # verifies every file's sha256
    results = check_package(package, get_backend("onnxruntime"))
    assert results and all(r.ok for r in results), [r for r in results if not r.ok]


@pytest.mark.parametrize("name", NAMES)
def test_bundled_package_does_the_task(name):
    package = load_package(resolve_package(name))
    cls = runner_class(package.manifest.policy_type)
    policy = cls(package, get_backend("onnxruntime"), **runner_options(cls, seed=0))
    result = evaluate(policy, EPISODES, seed=SEED)
    assert result.success_rate >= MIN_SUCCESS[name], result.summary()


def test_bundled_packages_are_small():
    """What the wheel carries: the VQ-BeT ResNet18 is stored as float16 (export --weights float16)."""
    sizes = {p.name: sum(f.stat().st_size for f in Path(p.path).iterdir()) for p in bundled()}
    assert max(sizes.values()) < 30e6, sizes
    assert load_package(resolve_package("vqbet")).manifest.weights == "float16"
