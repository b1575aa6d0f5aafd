"""Motion, current and heat of one emulated servo, from its datasheet figures; the profile generator; the hand.

Units inside: shaft angle in encoder ticks (float, multi-turn), velocity in ticks/s, torque in N.m at the output
shaft, current in A, temperature in degrees C. The e-manual gives stall torque, stall current and no-load speed at
the recommended supply ("Specifications"); what it does not give is assumed here, each assumption named:

* no-load current: NO_LOAD_CURRENT_FRACTION of the stall current while the shaft turns;
* mechanical time constant MECHANICAL_TIME_CONSTANT_S: stall torque takes the shaft to no-load speed in that time
  (it sets the reflected inertia);
* copper loss I^2 R with R = supply / stall current; a first-order thermal model with time constant
  THERMAL_TIME_CONSTANT_S whose thermal resistance puts a stalled servo's steady rise at STALL_RISE_FACTOR times
  its factory Temperature_Limit rise: a stall overheats in about tau * ln(2.5 / 1.5) ~ 2.5 minutes, while an
  unloaded servo settles a few percent of that stall rise above ambient however long it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.tables import TICKS_PER_TURN, Model

VELOCITY_UNIT = 0.229 / 60 * TICKS_PER_TURN  # ticks/s per Profile_Velocity / Present_Velocity unit (0.229 rpm)
ACCEL_UNIT = 214.577 / 3600 * TICKS_PER_TURN  # ticks/s^2 per Profile_Acceleration unit (214.577 rev/min^2)
AMBIENT_C = 25.0
NO_LOAD_CURRENT_FRACTION = 0.1
MECHANICAL_TIME_CONSTANT_S = 0.02
THERMAL_TIME_CONSTANT_S = 300.0
STALL_RISE_FACTOR = 2.5
TRACKING_GAIN = 40.0  # 1/s: how hard the position loop pulls the shaft onto the profile's trajectory
VELOCITY_LOOP_S = 0.01  # the velocity loop's time constant (with the gain above: damping ~0.8, no ringing)
OVERLOAD_CREEP = 0.02  # fraction of no-load speed at which a load beyond the stall torque pushes the shaft back
OVERLOAD_TORQUE = 1.5  # an injected overload: this many times the stall torque

# Motor command kinds.
FREE, POSITION, VELOCITY, PWM, CURRENT = range(5)


@dataclass(frozen=True)
class MotorParams:
    """Derived constants of one model's motor (see the module docstring for the assumptions)."""

    no_load_speed: float  # ticks/s
    stall_torque: float  # N.m
    stall_current: float  # A
    no_load_current: float  # A
    resistance: float  # ohm
    inertia: float  # N.m per tick/s^2
    thermal_resistance: float  # K/W
    current_unit_a: float | None  # A per Present_Current unit; None: Present_Load

    @classmethod
    def of(cls, model: Model) -> MotorParams:
        """The model's motor at its recommended supply."""
        spec = model.motor
        volts = model.input_voltage / 10.0
        no_load_speed = spec.no_load_rpm / 60.0 * TICKS_PER_TURN
        stall_power = volts * spec.stall_current_a
        temperature_limit = model.registers["Temperature_Limit"].initial or 70
        return cls(
            no_load_speed=no_load_speed, stall_torque=spec.stall_torque_nm, stall_current=spec.stall_current_a,
            no_load_current=NO_LOAD_CURRENT_FRACTION * spec.stall_current_a,
            resistance=volts / spec.stall_current_a,
            inertia=spec.stall_torque_nm * MECHANICAL_TIME_CONSTANT_S / no_load_speed,
            thermal_resistance=STALL_RISE_FACTOR * (temperature_limit - AMBIENT_C) / stall_power,
            current_unit_a=None if model.current_unit_ma is None else model.current_unit_ma / 1000.0)


class Motor:
    """Shaft, velocity, motor torque and current, winding temperature; `step` advances them by dt."""

    def __init__(self, params: MotorParams, shaft: float) -> None:
        self.p = params
        self.shaft = shaft
        self.velocity = 0.0
        self.torque = 0.0  # motor torque, N.m
        self.current = 0.0  # A, signed like the torque
        self.temperature = AMBIENT_C
        self.saturated = False  # the output is at its limit against a load it cannot move
        self.external_load = False  # an injected load beyond the stall torque (acts while torque is on)

    def step(self, dt: float, kind: int, target: float, feedforward: float, duty_limit: float,
             current_limit: float | None) -> None:
        """Advance by dt under a command: POSITION (target shaft ticks, feedforward ticks/s), VELOCITY (target
        ticks/s), PWM (target = duty -1..1), CURRENT (target = A) or FREE (torque off: the shaft is left alone)."""
        p = self.p
        if kind == FREE:
            self.velocity = self.torque = self.current = 0.0
            self.saturated = False
            self._heat(dt)
            return
        max_torque = p.stall_torque * duty_limit
        current_bound = current_limit is not None and current_limit < p.stall_current * duty_limit
        if current_bound:
            max_torque = p.stall_torque * current_limit / p.stall_current
        top_speed = p.no_load_speed * duty_limit
        if kind == POSITION:
            error = target - self.shaft
            brake = math.sqrt(1.8 * max_torque / p.inertia * abs(error)) if max_torque > 0 else 0.0
            wanted = feedforward + math.copysign(min(TRACKING_GAIN * abs(error), brake), error)
        elif kind == VELOCITY:
            wanted = target
        elif kind == PWM:
            wanted, top_speed = target * p.no_load_speed, abs(target) * p.no_load_speed
        else:  # CURRENT: an unloaded shaft runs up to speed as soon as the current beats friction
            wanted = math.copysign(p.no_load_speed, target) if abs(target) > p.no_load_current else 0.0
            if abs(target) < p.stall_current * duty_limit:
                current_bound, max_torque = True, p.stall_torque * abs(target) / p.stall_current
        wanted = max(-top_speed, min(top_speed, wanted))
        if self.external_load:
            self._overloaded(dt, max_torque, at_output_limit=not current_bound)
            return
        torque = p.inertia * (wanted - self.velocity) / max(dt, VELOCITY_LOOP_S)
        self.torque = max(-max_torque, min(max_torque, torque))
        self.velocity += self.torque / p.inertia * dt
        if kind == POSITION and abs(target - self.shaft - self.velocity * dt) < 0.5 and abs(feedforward) < 1e-9 \
                and abs(self.velocity) * dt < 1.0:
            self.shaft, self.velocity = target, 0.0  # arrived: the position loop holds it exactly
        else:
            self.shaft += self.velocity * dt
        self.saturated = False
        friction = math.copysign(p.no_load_current, self.velocity) if self.velocity else 0.0
        self.current = self.torque * p.stall_current / p.stall_torque + friction
        self._heat(dt)

    def _overloaded(self, dt: float, max_torque: float, at_output_limit: bool) -> None:
        """A load beyond the stall torque: the motor pushes back at its limit and still creeps backwards. Held by
        the current limit (current-based modes) the output is where it was asked to be, not at its maximum."""
        p = self.p
        self.velocity = -OVERLOAD_CREEP * p.no_load_speed
        self.shaft += self.velocity * dt
        self.torque = max_torque
        self.current = max_torque * p.stall_current / p.stall_torque
        self.saturated = at_output_limit and max_torque > 0
        self._heat(dt)

    def _heat(self, dt: float) -> None:
        """First-order winding temperature under copper loss, integrated exactly over dt."""
        p = self.p
        settle = AMBIENT_C + self.current * self.current * p.resistance * p.thermal_resistance
        self.temperature = settle + (self.temperature - settle) * math.exp(-dt / THERMAL_TIME_CONSTANT_S)

    @property
    def at_rest(self) -> bool:
        """Nothing moves and nothing flows: the remaining time only cools the winding."""
        return self.velocity == 0.0 and self.torque == 0.0 and not self.external_load

    def duty(self, duty_limit: float) -> float:
        """Present PWM as a signed fraction: back-EMF share plus the torque share, within the limit."""
        p = self.p
        value = abs(self.velocity) / p.no_load_speed + abs(self.torque) / p.stall_torque
        return math.copysign(min(duty_limit, value), self.torque or self.velocity)


class Profile:
    """The servo's profile generator (e-manual, Profile Velocity(112)): a trajectory toward the goal, in the servo's
    own position units; `velocity_limit`/`acceleration_limit` of math.inf mean 0 in the register (no limit)."""

    def __init__(self, position: float) -> None:
        self.position = position
        self.velocity = 0.0
        self.moving = False
        self.kind = 0x00  # Moving_Status bits 4-5: 0x30 trapezoidal, 0x20 triangular, 0x10 rectangular, 0 none

    def reset(self, position: float) -> None:
        """Start over at `position`, at rest."""
        self.position, self.velocity, self.moving = position, 0.0, False

    def plan(self, target: float, velocity_limit: float, acceleration_limit: float) -> None:
        """A new goal: classify the profile for Moving_Status (the e-manual's table of profile types)."""
        distance = abs(target - self.position)
        if math.isinf(velocity_limit):
            self.kind = 0x00
        elif math.isinf(acceleration_limit):
            self.kind = 0x10
        else:
            self.kind = 0x30 if distance >= velocity_limit ** 2 / acceleration_limit else 0x20
        self.moving = distance > 0

    def step(self, dt: float, target: float, velocity_limit: float, acceleration_limit: float) -> None:
        """Move the trajectory toward `target` for dt, braking in time to stop on it."""
        error = target - self.position
        if math.isinf(velocity_limit) or abs(error) < 1e-9:
            self.position, self.velocity, self.moving = target, 0.0, False
            return
        brake = math.inf if math.isinf(acceleration_limit) else math.sqrt(2 * acceleration_limit * abs(error))
        wanted = math.copysign(min(velocity_limit, brake), error)
        change = wanted - self.velocity
        limit = acceleration_limit * dt
        self.velocity += max(-limit, min(limit, change))
        step = self.velocity * dt
        if abs(step) >= abs(error) or (self.velocity * error <= 0 and abs(error) < 0.5):
            self.position, self.velocity, self.moving = target, 0.0, False
        else:
            self.position += step
            self.moving = True

    def ramp(self, dt: float, target_velocity: float, acceleration_limit: float) -> None:
        """Velocity mode: the trajectory velocity ramps to the goal velocity."""
        limit = acceleration_limit * dt
        self.velocity += max(-limit, min(limit, target_velocity - self.velocity))
        self.moving = self.velocity != target_velocity


@dataclass(frozen=True)
class Hand:
    """A person moving torque-off joints slowly back and forth around where they took hold, as when calibrating.

    amplitude_ticks: how far each way (900 ticks ~ +-79 degrees, so a half-turn homing taken anywhere in the sweep
    stays within the position-mode Homing_Offset range of +-1,024); period_s: one full back-and-forth.
    """

    amplitude_ticks: float = 900.0
    period_s: float = 8.0

    def offset(self, held_s: float) -> float:
        """Ticks away from the centre after holding the joint for held_s seconds."""
        return self.amplitude_ticks * math.sin(2 * math.pi * held_s / self.period_s)
