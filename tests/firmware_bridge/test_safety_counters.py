"""The safety layer's own totals: "safety interventions" and "bus errors" as the run summary reports them."""

from __future__ import annotations

from dataclasses import fields

from firmware_bridge.safety import SafetyCounters
from firmware_bridge.safety.config import INTERVENTIONS


def test_interventions_add_up_exactly_the_counters_that_interventions_names() -> None:
    counters = SafetyCounters(**{f.name: 2 ** i for i, f in enumerate(fields(SafetyCounters))})  # each one bit
    assert counters.interventions == sum(getattr(counters, name) for name in INTERVENTIONS)
    assert counters.breakdown() == {name: getattr(counters, name) for name in INTERVENTIONS}
    assert counters.bus_errors == counters.comm_errors + counters.hardware_errors
    assert counters.interventions & counters.bus_errors == 0  # no counter is in both totals
