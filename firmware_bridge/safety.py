"""Safety layer between the policy and the bus: every goal the arm receives passes through here.

Works in raw ticks; per-joint limits come from the calibration layer. One control tick is:

    safety = SafetyLayer(bus, limits, SafetyConfig(max_step_ticks=40, error_window_s=0.1))
    with safety:                        # start(): goal = present, torque on, Bus Watchdog armed;
        while running:                  #          SIGINT/SIGTERM handlers installed
            present = safety.observe()  # sync_read Present_Position; on a failed read: last good reading
            goals = policy(present)     # ticks, floats allowed
            sent = safety.step(goals)   # clamped, step-capped goals actually written (ints)
    # on exit (normal, exception or signal): optional rest pose, torque off, port released

`step` rejects NaN/inf (keeps the joint's last safe goal), clamps to the limits and caps the change
per tick. A failed transaction or a hardware-error alert opens an error episode; if it is
not cleared by `recovery_reads` consecutive good reads within `error_window_s`, the configured
reaction is taken at the next observe/step (so at most one tick after the window):
`hold` (keep the last safe goal, stop forwarding policy goals) or `torque_off`. Once tripped, `step`
sends nothing until `recover()` (reboots servos in shutdown, re-arms everything), and the reaction stays
in force through shutdown: no rest-pose motion, and after `hold` the port is released with torque still on
(the servos keep the last safe goal; their Bus Watchdog stops any motion). A problem that clears inside
the window needs nothing. Faults from outside the bus (a camera with no new frame) go through the same
window with `report()`; `trip()` reacts at once (another bus of the same robot tripped). Joints in extended
or current-based position mode have only these software limits (the servo ignores its position limits
there); velocity, current and PWM modes are refused at start. SIGINT/SIGTERM raise `SafetyStop` (a
KeyboardInterrupt) in the loop, or `SafetyTripped` once a reaction was taken.
All interventions are counted in `counters` (`SafetyCounters`).
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from types import FrameType

from firmware_bridge import tables
from firmware_bridge.bus import BusError, DynamixelBus
from firmware_bridge.errors import FirmwareBridgeError

logger = logging.getLogger(__name__)
REACTIONS = ("hold", "torque_off")
POSITION_MODES = ("position", "extended_position", "current_position")  # modes that follow Goal_Position
WATCHDOG_UNIT_MS = 20


class SafetyStop(KeyboardInterrupt):
    """Raised in the control loop when SIGINT/SIGTERM arrives; the `with` block then shuts down."""

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)


class SafetyRefused(FirmwareBridgeError, ValueError):
    """A safety setting or start condition refused before anything moved (bad limits, joints outside them)."""


class SafetyTripped(FirmwareBridgeError):
    """A run ended by a safety reaction; the message says what tripped (a lost servo, a stale camera, ...) and the
    reaction stays in force."""


@dataclass
class SafetyConfig:
    """How the layer guards the arm.

    max_step_ticks: largest goal change per tick (one for all joints, or per joint); error_window_s: how long a fault may last before the
    reaction; reaction: "hold" or "torque_off"; watchdog_ms: Bus Watchdog window (20 ms units, None = off);
    rest_pose: ticks to move to on shutdown (None = stay); rest_timeout_s / rest_tick_s: that move's bounds;
    recovery_reads: consecutive good reads that close an error episode, so a flapping link still trips.
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
        if self.watchdog_ms is not None and not WATCHDOG_UNIT_MS <= self.watchdog_ms <= 127 * WATCHDOG_UNIT_MS:
            raise SafetyRefused(f"watchdog_ms must be in 20..2540, got {self.watchdog_ms}")
        if self.recovery_reads < 1:
            raise SafetyRefused(f"recovery_reads must be at least 1, got {self.recovery_reads}")


@dataclass
class SafetyCounters:
    """How often the layer intervened."""

    clamped: int = 0  # goals clamped to a joint limit
    step_capped: int = 0  # goals whose change per tick was capped
    non_finite: int = 0  # NaN/inf goals rejected (last safe goal kept)
    missing: int = 0  # joints absent from a tick's goals (last safe goal kept)
    comm_errors: int = 0  # bus transactions that failed after retries
    hardware_errors: int = 0  # hardware-error alerts (per motor and occurrence)
    reactions: int = 0  # times the configured reaction was taken
    suppressed: int = 0  # ticks whose goals were dropped because the layer had tripped
    signals: int = 0  # SIGINT/SIGTERM received

    def summary(self) -> str:
        """'clamped=3 step_capped=10' for the non-zero counters."""
        return " ".join(f"{k}={v}" for k, v in asdict(self).items() if v) or "no interventions"


class SafetyLayer:
    """Guards `bus` (connected, configured) with per-joint `limits` (ticks, inclusive) and `config`.

    `watch` names bus motors that are never commanded but are read every tick for their hardware-error status
    (shadow servos, which follow their joint through Secondary_ID).
    """

    def __init__(self, bus: DynamixelBus, limits: Mapping[str, tuple[int, int]], config: SafetyConfig,
                 watch: Iterable[str] = ()) -> None:
        watched = list(watch)
        missing = [m for m in bus.motors if m not in limits and m not in watched]
        if missing:
            raise SafetyRefused(f"no joint limits for {missing}")
        if set(watched) & set(limits) or not set(watched) <= set(bus.motors):
            raise SafetyRefused(f"watched motors {watched} must be bus motors without joint limits")
        for name, (lo, hi) in limits.items():
            if name not in bus.motors:
                raise SafetyRefused(f"joint limits given for unknown motor {name!r}")
            if lo > hi:
                raise SafetyRefused(f"joint {name!r}: limits ({lo}, {hi}) are reversed")
        steps = config.max_step_ticks
        per_joint = steps if isinstance(steps, Mapping) else {}
        for name in [*(config.rest_pose or {}), *per_joint]:
            if name not in limits:
                raise SafetyRefused(f"rest pose or max_step_ticks names unknown motor {name!r}")
        if per_joint and set(per_joint) != set(limits):
            raise SafetyRefused(f"max_step_ticks has no entry for {sorted(set(limits) - set(per_joint))}")
        self.bus = bus
        self.limits = {name: (int(lo), int(hi)) for name, (lo, hi) in limits.items()}
        self.joints = [m for m in bus.motors if m in limits]  # commanded, in bus order
        self.watched = watched
        self._read = self.joints + watched  # one sync read per tick covers both
        self.config = config
        self.max_step = {m: int(per_joint[m]) if per_joint else int(steps) for m in self.joints}
        self.modes: dict[str, str] = {}  # joint -> operating mode name, read at start()
        self.counters = SafetyCounters()
        self.tripped: str | None = None  # why the reaction was taken, None while healthy
        self.reaction_delay_s: float | None = None  # first error -> reaction, for the last reaction
        self.faulted: dict[str, str] = {}  # motor -> latched hardware error
        self.present: dict[str, int] = {}
        self._goal: dict[str, int] = {}
        self._error_since: float | None = None
        self._error_cause = ""
        self._external: dict[str, str] = {}  # source -> problem, faults reported from outside the bus
        self._good_reads = 0
        self._stopping = False
        self._closed = False
        self._previous_handlers: dict[int, object] = {}

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> dict[str, int]:
        """Goal = present position, torque on, Bus Watchdog armed. Returns the present positions.

        Refuses (SafetyRefused, nothing written) joints outside their limits and joints in a mode that does not
        follow Goal_Position (velocity, current, PWM).
        """
        names = {v: k for k, v in tables.OPERATING_MODES.items()}
        modes = {m: names.get(v, str(v)) for m, v in self.bus.sync_read("Operating_Mode", self.joints).items()}
        unusable = {m: mode for m, mode in modes.items() if mode not in POSITION_MODES}
        if unusable:
            raise SafetyRefused(f"joints in a mode that ignores Goal_Position: {unusable} (use {', '.join(POSITION_MODES)})")
        present = self.bus.sync_read("Present_Position", self.joints)
        outside = {m: v for m, v in present.items() if not self.limits[m][0] <= v <= self.limits[m][1]}
        if outside:
            raise SafetyRefused(f"joints outside their limits, move them inside by hand first: {outside}")
        self.modes = modes
        self.bus.sync_write("Goal_Position", present)
        self.bus.enable_torque(self.joints)
        if self.config.watchdog_ms is not None:
            self.bus.sync_write("Bus_Watchdog", {m: 0 for m in self.joints})  # clears a fired watchdog
            units = math.ceil(self.config.watchdog_ms / WATCHDOG_UNIT_MS)
            self.bus.sync_write("Bus_Watchdog", {m: units for m in self.joints})
        self.present, self._goal = dict(present), dict(present)
        self.tripped, self._error_since = None, None
        self._external.clear()
        return dict(present)

    @property
    def software_limited(self) -> list[str]:
        """Joints whose limits only this layer enforces: extended / current-based position mode ignore the servo's
        Min/Max_Position_Limit (e-manual, Operating Mode)."""
        return [m for m, mode in self.modes.items() if mode != "position"]

    def recover(self) -> dict[str, int]:
        """After a reaction: reboot servos in hardware shutdown, clear the watchdog and `start()` again."""
        for name in self._read:
            if self.bus.read("Hardware_Error_Status", name):
                self.bus.reboot(name)
        self.faulted.clear()
        self.bus.alerts.clear()
        return self.start()

    def shutdown(self) -> None:
        """Stop commanding, move to the rest pose if configured, torque off, release the port.

        After a reaction nothing moves: no rest pose, and after `hold` torque stays on (the reaction in force).
        """
        if self._closed:
            return
        self._stopping = True
        try:
            if self.config.rest_pose and self._goal and self.tripped is None:
                self._move_to_rest()
        except BusError as exc:
            logger.error("rest pose abandoned: %s", exc)
        finally:
            self._closed = True
            holding = self.tripped is not None and self.config.reaction == "hold"
            if holding:
                logger.warning("safety: port released with torque on, holding the last safe goal (%s)", self.tripped)
            try:
                self.bus.disconnect(disable_torque=not holding)
            finally:
                self._restore_signal_handlers()
                logger.info("safety: %s", self.counters.summary())

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM raise `SafetyStop` in the control loop (ignored once shutdown has begun)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.counters.signals += 1
        if not self._stopping:
            self._stopping = True
            if self.tripped is not None:  # the run already ended by a reaction: that is what it ended by
                raise SafetyTripped(self.tripped)
            raise SafetyStop(f"received {signal.Signals(signum).name}", signum)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def __enter__(self) -> SafetyLayer:
        self.install_signal_handlers()
        try:
            self.start()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # ---- per tick ----------------------------------------------------------------------------

    def observe(self) -> dict[str, int]:
        """Present positions (sync read); on a failed read, the last good reading while the window runs."""
        self._check_running()
        try:
            read = self.bus.sync_read("Present_Position", self._read)
        except BusError as exc:
            self.counters.comm_errors += 1
            self._fault(f"communication: {exc}")
            return dict(self.present)
        self.present = {m: read[m] for m in self.joints}
        alerted = sorted(self.bus.alerts & set(self._read))
        if alerted:
            self._on_alerts(alerted)
        elif self._error_since is not None:
            self._good_reads += 1
            if self._good_reads >= self.config.recovery_reads and not self._external:
                self._error_since = None
        return dict(self.present)

    def report(self, source: str, problem: str | None) -> None:
        """A fault outside the bus (e.g. `report("camera observation.images.top", "no new frame for 180 ms")`):
        it opens an error episode like a bus fault and trips after the same window; `problem=None` clears it."""
        if problem is None:
            self._external.pop(source, None)
            return
        self._external[source] = problem
        self._fault(f"{source}: {problem}")

    def trip(self, cause: str) -> None:
        """Take the reaction now (e.g. another bus of the same robot tripped); no-op if already tripped."""
        if self.tripped is None:
            if self._error_since is None:
                self._error_since = time.monotonic()
            self._error_cause = cause
            self._react()

    def step(self, goals: Mapping[str, float]) -> dict[str, int]:
        """Sanitize `goals` (ticks), write them as Goal_Position, return what was written."""
        self._check_running()
        unknown = [name for name in goals if name not in self.limits]
        if unknown:
            raise SafetyRefused(f"goals for unknown motors {unknown}")
        self._check_window()
        if self.tripped is not None:
            self.counters.suppressed += 1
            return dict(self._goal)
        safe = self._sanitize(goals)
        try:
            self.bus.sync_write("Goal_Position", safe)
        except BusError as exc:
            self.counters.comm_errors += 1
            self._fault(f"communication: {exc}")
            return dict(self._goal)
        self._goal = safe
        return dict(safe)

    @property
    def healthy(self) -> bool:
        """No fault pending and no reaction taken."""
        return self._error_since is None and self.tripped is None

    def _check_running(self) -> None:
        if self._closed:
            raise SafetyStop("safety layer is shut down")
        if not self._goal:
            raise FirmwareBridgeError("call start() (or use `with safety:`) before observe/step")

    def _sanitize(self, goals: Mapping[str, float]) -> dict[str, int]:
        safe = {}
        for name, previous in self._goal.items():
            step = self.max_step[name]
            goal = goals.get(name)
            if goal is None:
                self.counters.missing += 1
                goal = previous
            elif not math.isfinite(goal := float(goal)):
                self.counters.non_finite += 1
                goal = previous
            lo, hi = self.limits[name]
            if not lo <= goal <= hi:
                self.counters.clamped += 1
                goal = min(max(goal, lo), hi)
            if abs(goal - previous) > step:
                self.counters.step_capped += 1
                goal = previous + math.copysign(step, goal - previous)
            safe[name] = min(max(round(goal), lo), hi)
        return safe

    # ---- faults ------------------------------------------------------------------------------

    def _on_alerts(self, alerted: list[str]) -> None:
        for name in alerted:
            if name in self.faulted:
                continue
            try:
                bits = self.bus.read("Hardware_Error_Status", name)
            except BusError:
                bits = 0
            self.faulted[name] = tables.describe_hw_error(bits) if bits else "alert"
            self.counters.hardware_errors += 1
            logger.error("hardware error on %s: %s", name, self.faulted[name])
        self._fault(f"hardware error: {self.faulted}")

    def _fault(self, cause: str) -> None:
        if self._error_since is None:
            self._error_since = time.monotonic()
        self._error_cause = cause
        self._good_reads = 0
        self._check_window()

    def _check_window(self) -> None:
        if self.tripped is None and self._error_since is not None \
                and time.monotonic() - self._error_since >= self.config.error_window_s:
            self._react()

    def _react(self) -> None:
        self.tripped = self._error_cause
        self.counters.reactions += 1
        self.reaction_delay_s = time.monotonic() - (self._error_since or 0.0)
        logger.error("safety reaction %r after %.0f ms: %s", self.config.reaction,
                     self.reaction_delay_s * 1000, self._error_cause)
        try:
            if self.config.reaction == "torque_off":
                self.bus.disable_torque()
            else:
                self.bus.sync_write("Goal_Position", self._goal)
        except BusError as exc:
            self.counters.comm_errors += 1
            logger.error("safety reaction incomplete: %s", exc)

    def _move_to_rest(self) -> None:
        rest = {**self._goal, **(self.config.rest_pose or {})}
        target = {m: min(max(v, self.limits[m][0]), self.limits[m][1]) for m, v in rest.items()}
        deadline = time.monotonic() + self.config.rest_timeout_s
        while time.monotonic() < deadline:
            self._goal = self._sanitize(rest)
            self.bus.sync_write("Goal_Position", self._goal)
            present = self.bus.sync_read("Present_Position", self.joints)
            if self._goal == target and all(abs(present[m] - target[m]) <= self.max_step[m] for m in target):
                return
            time.sleep(self.config.rest_tick_s)
        logger.warning("rest pose not reached within %.1f s", self.config.rest_timeout_s)
