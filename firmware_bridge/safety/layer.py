"""SafetyLayer: one bus's guard, composing the sanitizer, the error window, the stop signals and the rest pose.

Works in raw ticks on any `MotorsBus` (firmware_bridge/motors_bus.py; DynamixelBus is the one); per-joint limits
come from the calibration layer. One control tick is:

    bus.connect()                       # the bus belongs to its creator, who also releases it
    with SafetyLayer(bus, limits, SafetyConfig(max_step_ticks=40, error_window_s=0.1)) as safety:
        while running:                  # entered: goal = present, torque on, Bus Watchdog armed, signal handlers
            present = safety.observe()  # bus.read_positions; on a failed read: last good reading
            goals = policy(present)     # ticks, floats allowed
            sent = safety.step(goals)   # clamped, step-capped goals actually written (ints)
    bus.disconnect(disable_torque=False)  # torque is the layer's call: off, or left on by a `hold` reaction

On exit (normal, exception or signal) the layer moves to the rest pose after a clean run, then turns torque off;
after a reaction nothing moves and a `hold` leaves torque on (the servos keep the last safe goal; their Bus Watchdog
stops any motion once nothing talks to them). `step` rejects NaN/inf, clamps and caps (sanitizer.py); a failed
transaction, a hardware-error alert or a `report()`ed outside fault that outlasts the error window takes the
reaction (faults.py): `hold` (keep the last safe goal, stop forwarding policy goals) or `torque_off`; `trip()`
reacts at once (another bus of the same robot tripped). Every tick also reads back one of Torque_Enable and Bus_Watchdog
(alternately; both are RAM, 0 again after a power loss or reboot): a servo found torque-off, its watchdog cleared or
fired, was reset or stopped, and the reaction is taken at once; a torque-off joint is never commanded again (not
even by `hold`). Joints in extended or current-based position mode have
only these software limits (the servo ignores its position limits there); velocity, current and PWM modes are
refused at start. SIGINT/SIGTERM/SIGHUP raise `SafetyStop` in the loop, or `SafetyTripped` once a reaction was taken.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable, Mapping
from types import FrameType

from firmware_bridge import tables
from firmware_bridge.errors import FirmwareBridgeError
from firmware_bridge.motors_bus import WATCHDOG_FIRED, BusError, MotorsBus
from firmware_bridge.safety.config import SafetyConfig, SafetyCounters, SafetyRefused
from firmware_bridge.safety.faults import FaultWindow, SafetyTripped
from firmware_bridge.safety.rest_pose import move_to_rest
from firmware_bridge.safety.sanitizer import GoalSanitizer
from firmware_bridge.safety.signals import SafetyStop, StopSignals

logger = logging.getLogger(__name__)


class SafetyLayer:
    """Guards `bus` (connected, configured; not owned: the layer never releases it) with per-joint `limits`
    (ticks, inclusive) and `config`.

    `watch` names bus motors that are never commanded but are read every tick for their hardware-error status
    (shadow servos, which follow their joint through Secondary_ID).
    """

    def __init__(self, bus: MotorsBus, limits: Mapping[str, tuple[int, int]], config: SafetyConfig,
                 watch: Iterable[str] = ()) -> None:
        watched = list(watch)
        missing = [m for m in bus.motors if m not in limits and m not in watched]
        if missing:
            raise SafetyRefused(f"no joint limits for {missing}")
        if set(watched) & set(limits) or not set(watched) <= set(bus.motors):
            raise SafetyRefused(f"watched motors {watched} must be bus motors without joint limits")
        for name in limits:
            if name not in bus.motors:
                raise SafetyRefused(f"joint limits given for unknown motor {name!r}")
        self.joints = [m for m in bus.motors if m in limits]  # commanded, in bus order
        self.counters = SafetyCounters()
        self.sanitizer = GoalSanitizer(limits, config.max_step_ticks, self.joints, self.counters)
        for name in config.rest_pose or {}:
            if name not in limits:
                raise SafetyRefused(f"rest pose or max_step_ticks names unknown motor {name!r}")
        self.bus = bus
        self.limits = self.sanitizer.limits
        self.max_step = self.sanitizer.max_step
        self.watched = watched
        self._read = self.joints + watched  # one sync read per tick covers both
        self.config = config
        self.modes: dict[str, str] = {}  # joint -> operating mode name, read at start()
        self.faults = FaultWindow(config.error_window_s, config.recovery_reads, self._react)
        self.faulted: dict[str, str] = {}  # motor -> latched hardware error
        self.limp: set[str] = set()  # motors read back with torque off: never commanded again
        self._readbacks = 0  # read-backs done: whether the next one reads torque or the watchdog
        self._watchdog_ms = 0  # the watchdog window the servos must read back once armed (0: not armed)
        self.present: dict[str, int] = {}
        self.closed = False  # shutdown() has run: nothing more is commanded, torque was dealt with
        self._goal: dict[str, int] = {}
        self._stopping = False
        self._signals = StopSignals()

    @property
    def tripped(self) -> str | None:
        """Why the reaction was taken, None while running normally."""
        return self.faults.tripped

    @property
    def reaction_delay_s(self) -> float | None:
        """First error -> reaction, once the reaction was taken."""
        return self.faults.reaction_delay_s

    @property
    def holding(self) -> bool:
        """A `hold` reaction is in force: torque stays on at shutdown."""
        return self.tripped is not None and self.config.reaction == "hold"

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> dict[str, int]:
        """Goal = present position, torque on, Bus Watchdog armed. Returns the present positions.

        Refuses (SafetyRefused, nothing written) joints outside their limits and joints in a mode that does not
        follow Goal_Position (velocity, current, PWM).
        """
        modes = self.bus.operating_modes(self.joints)
        unusable = {m: mode for m, mode in modes.items() if mode not in tables.POSITION_MODES}
        if unusable:
            raise SafetyRefused(f"joints in a mode that ignores Goal_Position: {unusable} "
                                f"(use {', '.join(tables.POSITION_MODES)})")
        present = self.bus.read_positions(self.joints)
        outside = {m: v for m, v in present.items() if not self.limits[m][0] <= v <= self.limits[m][1]}
        if outside:
            raise SafetyRefused(f"joints outside their limits, move them inside by hand first: {outside}")
        self.modes = modes
        self.bus.write_goals(present)
        self.bus.enable_torque(self.joints)
        if self.config.watchdog_ms is not None:  # also clears a fired watchdog
            self._watchdog_ms = self.bus.arm_watchdog(self.joints, self.config.watchdog_ms)
        self.present, self._goal = dict(present), dict(present)
        return dict(present)

    @property
    def software_limited(self) -> list[str]:
        """Joints whose limits only this layer enforces: extended / current-based position mode ignore the servo's
        Min/Max_Position_Limit (e-manual, Operating Mode)."""
        return [m for m, mode in self.modes.items() if mode != "position"]

    def shutdown(self) -> None:
        """Stop commanding, move to the rest pose after a clean run, torque off; once only. The bus stays connected
        (its creator releases it). After a reaction nothing moves, and after `hold` torque stays on."""
        if self.closed:
            return
        self._stopping = self.closed = True
        try:
            if self.config.rest_pose and self._goal and self.tripped is None:
                move_to_rest(self.bus, self.sanitizer, self._goal, self.config.rest_pose,
                             self.config.rest_timeout_s, self.config.rest_tick_s)
        except BusError as exc:
            logger.error("rest pose abandoned: %s", exc)
        finally:
            try:
                if self.holding:
                    logger.info("safety: torque left on, holding the last safe goal (%s)", self.tripped)
                else:
                    self.bus.disable_torque()
            except BusError as exc:
                logger.error("safety: could not confirm torque off: %s", exc)
            finally:
                self._signals.restore()
                logger.info("safety: %s", self.counters.summary())

    def __enter__(self) -> SafetyLayer:
        """Signal handlers installed, then `start()`; a refused start shuts down again before raising."""
        self._signals.install(self._on_signal)
        try:
            self.start()
        except BaseException:
            self.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM/SIGHUP: SafetyStop in the loop, SafetyTripped once a reaction was taken; ignored in
        shutdown."""
        self.counters.signals += 1
        if not self._stopping:
            self._stopping = True
            if self.tripped is not None:  # the run already ended by a reaction: that is what it ended by
                raise SafetyTripped(self.tripped)
            raise SafetyStop(f"received {signal.Signals(signum).name}", signum)

    # ---- per tick ----------------------------------------------------------------------------

    def observe(self) -> dict[str, int]:
        """Present positions (sync read), then one read-back; on a failed read, the last good reading while the
        window runs."""
        self._check_running()
        try:
            read = self.bus.read_positions(self._read)
        except BusError as exc:
            self._comm_fault(exc)
            return dict(self.present)
        self.present = {m: read[m] for m in self.joints}
        alerted = sorted(self.bus.alerts & set(self._read))
        if alerted:
            self._on_alerts(alerted)
        else:
            self.faults.good_read()
        if self.tripped is None:
            self._read_back()
        return dict(self.present)

    def _read_back(self) -> None:
        """Torque or watchdog (alternately, the watchdog only when armed) of every servo read: a value other than
        the one set at start means the servo was reset (power loss, reboot) or stopped, and its joint may be limp:
        the reaction is taken now, and a torque-off joint is left alone."""
        torque = not self._watchdog_ms or self._readbacks % 2 == 0
        self._readbacks += 1
        try:
            values = self.bus.torque_enabled(self._read) if torque else self.bus.read_watchdog(self._read)
        except BusError as exc:
            self._comm_fault(exc)
            return
        expected = True if torque else self._watchdog_ms
        wrong = {m: v for m, v in values.items() if v != expected}
        if not wrong:
            return
        if not torque:  # is it limp too? (a reset servo is, unless it starts with torque on)
            try:
                on = self.bus.torque_enabled(list(wrong))
            except BusError:
                on = {m: False for m in wrong}  # unknown: treated as limp, never commanded
            self.limp |= {m for m, v in on.items() if not v}
        if torque:
            self.limp |= set(wrong)
            known = {m: self.faulted[m] for m in wrong if m in self.faulted}
            cause = (f"hardware error: {known}, torque off on {', '.join(wrong)}" if known else
                     f"servo reset: {', '.join(wrong)} read back Torque_Enable 0 (a servo that lost power or "
                     "rebooted comes back with torque off); no goal is sent to it")
        elif all(v == WATCHDOG_FIRED for v in wrong.values()):  # a stall, not a reset: re-armed, a fault
            self._rearm_watchdog(list(wrong))
            return
        else:
            limp = [m for m in wrong if m in self.limp]
            cause = (f"servo reset: {', '.join(wrong)} read back Bus_Watchdog {sorted(set(wrong.values()))} ms, "
                     f"set to {expected} ms at start (a servo that lost power or rebooted comes back with it 0)"
                     + (f"; torque off on {', '.join(limp)}, no goal is sent to it" if limp else ""))
        self.faults.trip(cause)

    def report(self, source: str, problem: str | None) -> None:
        """A fault outside the bus (e.g. `report("camera observation.images.top", "no new frame for 180 ms")`):
        it opens an error episode like a bus fault and trips after the same window; `problem=None` clears it."""
        self.faults.report(source, problem)

    def trip(self, cause: str) -> None:
        """Take the reaction now (e.g. another bus of the same robot tripped); no-op if already tripped."""
        self.faults.trip(cause)

    def step(self, goals: Mapping[str, float]) -> dict[str, int]:
        """Sanitize `goals` (ticks), write them as Goal_Position, return what was written."""
        self._check_running()
        unknown = [name for name in goals if name not in self.limits]
        if unknown:
            raise SafetyRefused(f"goals for unknown motors {unknown}")
        self.faults.check()
        if self.tripped is not None:
            self.counters.suppressed += 1
            return dict(self._goal)
        safe = self.sanitizer.sanitize(self._goal, goals)
        try:
            self.bus.write_goals(safe)
        except BusError as exc:
            self._comm_fault(exc)
            return dict(self._goal)
        self._goal = safe
        return dict(safe)

    def _check_running(self) -> None:
        if self.closed:
            raise SafetyStop("safety layer is shut down")
        if not self._goal:
            raise FirmwareBridgeError("call start() (or use `with safety:`) before observe/step")

    def _comm_fault(self, exc: BusError) -> None:
        """A transaction that failed after the bus's retries: counted, and a fault in the error window."""
        self.counters.comm_errors += 1
        self.faults.fault(f"communication: {exc}")

    def _on_alerts(self, alerted: list[str]) -> None:
        """Hardware-error alerts: read and latch what each new one is, then count it as a fault."""
        for name in alerted:
            if name in self.faulted:
                continue
            try:
                error = self.bus.hardware_error(name)
            except BusError:
                error = None
            self.faulted[name] = error or "alert"
            self.counters.hardware_errors += 1
            logger.error("hardware error on %s: %s", name, self.faulted[name])
        self.faults.fault(f"hardware error: {self.faulted}")

    def _rearm_watchdog(self, fired: list[str]) -> None:
        """A Bus Watchdog that fired (the loop stalled longer than it; the servo stopped and refuses goals): cleared
        and armed again (bus_watchdog.md), and a fault in the error window, so a stall that recurs trips."""
        try:  # every joint (shadows take it through their Secondary_ID), as start() did
            self.bus.arm_watchdog(self.joints, self._watchdog_ms)
        except BusError as exc:
            self._comm_fault(exc)
            return
        self.faults.fault(f"Bus Watchdog fired on {', '.join(fired)}: no instruction reached it for "
                          f"{self._watchdog_ms} ms; re-armed")

    def _react(self, cause: str) -> None:
        """The configured reaction, taken once when the fault window trips. Logged at INFO only: the cause is
        `tripped`, which whoever runs the layer reports once (`edge run`'s closing line)."""
        self.counters.reactions += 1
        logger.info("safety reaction %r after %.0f ms: %s", self.config.reaction,
                     (self.reaction_delay_s or 0.0) * 1000, cause)
        try:
            if self.config.reaction == "torque_off":
                self.bus.disable_torque()
            elif any(m not in self.limp for m in self._goal):
                self.bus.write_goals({m: v for m, v in self._goal.items() if m not in self.limp})
        except BusError as exc:
            self.counters.comm_errors += 1
            logger.error("safety reaction incomplete: %s", exc)
