"""The policy-family tables of the two floors, the package format's lists, and what importing a family changes.

The runtime's table (edge/runtime/policies/__init__.py) and export's (export/families/__init__.py) name no module
of the other floor, so nothing but this test holds their keys together; likewise the format's sampler names and
the runtime's schedulers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edge
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.package import POLICY_SECTIONS, SAMPLERS, load_package
from edge.runtime.policies import FAMILIES as RUNTIME_FAMILIES
from edge.runtime.policies.base import PolicyRunner
from edge.runtime.schedulers import SCHEDULERS
from export.families import FAMILIES as EXPORT_FAMILIES

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(edge.__file__).parent / "data"


def test_both_floors_list_the_same_families_as_the_package_format():
    assert list(RUNTIME_FAMILIES) == list(EXPORT_FAMILIES) == list(POLICY_SECTIONS)
    for policy_type, family in RUNTIME_FAMILIES.items():
        assert family.section is POLICY_SECTIONS[policy_type]
        assert family.runner.policy_type == policy_type and issubclass(family.runner, PolicyRunner)


def test_every_sampler_name_of_the_format_has_a_scheduler():
    assert sorted(SCHEDULERS) == sorted(SAMPLERS)


def test_each_exported_family_has_an_exporter_and_a_trainer():
    pytest.importorskip("torch")
    for policy_type, family in EXPORT_FAMILIES.items():
        exporter, trainer = family.exporter(), family.trainer()
        assert exporter.__name__ == f"export.families.{policy_type}" and callable(exporter.build)
        assert trainer.__name__ == f"export.train.{policy_type}" and callable(trainer.train_policy)
        assert isinstance(trainer.IMAGES, bool)


@pytest.mark.parametrize("before", [True, False])
def test_importing_the_exporters_leaves_the_mha_fast_path_switch_alone(before):
    pytest.importorskip("torch")
    code = (f"import torch\ntorch.backends.mha.set_fastpath_enabled({before})\n"
            "from export.families import FAMILIES\n"
            "for family in FAMILIES.values():\n    family.exporter(); family.trainer()\n"
            "print(torch.backends.mha.get_fastpath_enabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(before)]


@pytest.mark.parametrize("before", [True, False])
def test_export_turns_the_fast_path_off_while_tracing_and_restores_it(tmp_path, before):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from export.families.base import GraphExport
    from export.onnx_export import export_graph

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):  # noqa: ANN001, ANN201
            seen.append(torch.backends.mha.get_fastpath_enabled())
            return x * 2

    graph = GraphExport("probe", Probe(), ["x"], ["y"], [{"x": np.ones((1, 3), np.float32)}])
    torch.backends.mha.set_fastpath_enabled(before)
    try:
        export_graph(graph, tmp_path / "probe.onnx", opset=17)
        assert seen and not any(seen)  # traced with the fast path off
        assert torch.backends.mha.get_fastpath_enabled() is before
    finally:
        torch.backends.mha.set_fastpath_enabled(True)


class BareRunner(PolicyRunner):
    """A runner that keeps no queue of its own: only what the base class gives it."""

    policy_type = "act"

    def select_action(self, observation):  # noqa: ANN001, ANN201
        self._queue.extend(np.zeros((3, self.action_dim), np.float32))
        return self._queue.popleft()

    predict_action_chunk = observe = plan = plan_window = plan_batch = select_action


def test_the_base_runner_owns_the_action_queue_it_reports():
    with BareRunner(load_package(DATA / "demo_act"), OnnxRuntimeBackend(["CPUExecutionProvider"])) as runner:
        assert runner.queued_actions == 0
        runner.select_action({})
        assert runner.queued_actions == 2
        runner.reset()
        assert runner.queued_actions == 0
