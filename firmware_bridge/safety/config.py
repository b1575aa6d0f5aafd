"""What a safety layer is told (`SafetyConfig`, checked when built) and what it reports (`SafetyCounters`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from firmware_bridge import tables
from firmware_bridge.errors import FirmwareBridgeError

REACTIONS = ("hold", "torque_off")


class SafetyRefused(FirmwareBridgeError, ValueError):
    """A safety setting or start condition refused before anything moved (bad limits, joints outside them)."""


@dataclass
class SafetyConfig:
    """How the layer guards the arm.

    max_step_ticks: largest goal change per tick (one for all joints, or per joint); error_window_s: how long a fault
    may last before the reaction; reaction: "hold" or "torque_off"; watchdog_ms: Bus Watchdog window (20 ms units,
    None = off); rest_pose: ticks to move to on shutdown (None = stay); rest_timeout_s / rest_tick_s: that move's
    bounds; recovery_reads: consecutive good reads that close an error episode, so a flapping link still trips.
    """

    max_step_ticks: int | dict[str, int]
    error_window_s: float = 0.1
    reaction: str = "hold"
    watchdog_ms: int | None = 100
    rest_pose: dict[str, int] | None = None
    rest_timeout_s: float = 3.0
    rest_tick_s: float = 0.02
    recovery_reads: int = 3

    def __post_init__(self) -> None:
        steps = self.max_step_ticks.values() if isinstance(self.max_step_ticks, Mapping) else [self.max_step_ticks]
        if not all(step > 0 for step in steps):
            raise SafetyRefused(f"max_step_ticks must be positive, got {self.max_step_ticks}")
        if not self.error_window_s > 0:
            raise SafetyRefused(f"error_window_s must be positive, got {self.error_window_s}")
        if self.reaction not in REACTIONS:
            raise SafetyRefused(f"reaction must be one of {REACTIONS}, got {self.reaction!r}")
        unit, most = tables.WATCHDOG_UNIT_MS, tables.WATCHDOG_MAX_UNITS * tables.WATCHDOG_UNIT_MS
        if self.watchdog_ms is not None and not unit <= self.watchdog_ms <= most:
            raise SafetyRefused(f"watchdog_ms must be in {unit}..{most}, got {self.watchdog_ms}")
        if self.recovery_reads < 1:
            raise SafetyRefused(f"recovery_reads must be at least 1, got {self.recovery_reads}")


@dataclass
class SafetyCounters:
    """How often the layer intervened (INTERVENTIONS says what each intervention counter means)."""

    clamped: int = 0  # goals clamped to a joint limit
    step_capped: int = 0  # goals whose change per tick was capped
    non_finite: int = 0  # NaN/inf goals rejected (last safe goal kept)
    missing: int = 0  # joints absent from a tick's goals (last safe goal kept)
    comm_errors: int = 0  # bus transactions that failed after retries
    hardware_errors: int = 0  # hardware-error alerts (per motor and occurrence)
    reactions: int = 0  # times the configured reaction was taken
    suppressed: int = 0  # ticks whose goals were dropped because the layer had tripped
    signals: int = 0  # SIGINT/SIGTERM/SIGHUP received

    def summary(self) -> str:
        """'clamped=3 step_capped=10' for the non-zero counters."""
        return " ".join(f"{k}={v}" for k, v in asdict(self).items() if v) or "no interventions"

    @property
    def interventions(self) -> int:
        """The run summary's "safety interventions": every INTERVENTIONS counter added up (read every tick)."""
        return self.clamped + self.step_capped + self.non_finite + self.missing + self.reactions + self.suppressed

    @property
    def bus_errors(self) -> int:
        """Failed transactions and hardware-error alerts: the run summary's "bus errors"."""
        return self.comm_errors + self.hardware_errors

    def breakdown(self) -> dict[str, int]:
        """Each INTERVENTIONS counter's count, in INTERVENTIONS order (what `interventions` adds up)."""
        return {name: getattr(self, name) for name in INTERVENTIONS}


# The counters that make up "safety interventions" in a run's summary, and what each means (edge run prints this).
INTERVENTIONS = {
    "clamped": "goal outside the joint's calibrated range, clamped to it",
    "step_capped": "goal further than safety.max_step_deg from the last one, moved only that far this tick",
    "non_finite": "NaN/inf goal rejected, the last safe goal kept",
    "missing": "a joint without a goal this tick, its last safe goal kept",
    "reactions": "the configured reaction (hold / torque_off) taken after faults outlasted safety.error_window_s",
    "suppressed": "ticks whose goals were dropped because a reaction had been taken",
}
