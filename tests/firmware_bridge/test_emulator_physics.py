"""The emulated motor's current and heat from the datasheet figures, integrated over simulated time (no real time):
an unloaded servo runs for hours; only a stalled or overloaded one overheats, in minutes."""

from __future__ import annotations

import math

import pytest

from firmware_bridge import tables
from firmware_bridge.emulator import EmulatedServo
from firmware_bridge.emulator.physics import AMBIENT_C, THERMAL_TIME_CONSTANT_S, MotorParams


def servo(model: str, shaft: float = 2048.0) -> EmulatedServo:
    return EmulatedServo(1, tables.model(model), 1_000_000, 52, shaft, now=0.0)


def write(s: EmulatedServo, name: str, value: int, now: float) -> None:
    reg = s.regs[name]
    assert s.write(reg.address, reg.encode(value), now) & 0x7F == 0, name


def run(s: EmulatedServo, start: float, seconds: float, step: float) -> float:
    t = start
    while t < start + seconds - 1e-9:
        t += step
        s.update(t)
    return t


@pytest.mark.parametrize("model", ["xl430-w250", "xl330-m288", "xm430-w350"])
def test_unloaded_servo_moving_all_the_time_runs_for_hours(model: str) -> None:
    """Two simulated hours of full-speed moves (no profile: the largest accelerations), one a second."""
    s, t, hottest = servo(model), 0.0, AMBIENT_C
    write(s, "Torque_Enable", 1, t)
    for second in range(2 * 3600):
        write(s, "Goal_Position", 1248 if second % 2 else 2848, t)  # 1600 ticks each way
        t = run(s, t, 1.0, 0.25)
        hottest = max(hottest, s.motor.temperature)
        if second == 3600:
            after_an_hour = s.motor.temperature
    s.refresh()
    assert s.get("Hardware_Error_Status") == 0
    limit = s.get("Temperature_Limit")
    assert hottest < AMBIENT_C + 0.15 * (limit - AMBIENT_C)  # settled far below the limit...
    assert abs(s.motor.temperature - after_an_hour) < 0.2  # ...and staying there
    assert s.get("Present_Position") in (1248, 2848)


def test_policy_rate_goals_settle_cool() -> None:
    """200 Hz goals along a path, as `edge run --async` sends them, for four thermal time constants (20 minutes):
    the winding settles a degree or so above ambient (the old model latched overheating after 4 minutes)."""
    s, t = servo("xl430-w250"), 0.0
    write(s, "Torque_Enable", 1, t)
    for tick in range(200 * 1200):
        write(s, "Goal_Position", 2048 + round(600 * math.sin(2 * math.pi * tick / 400)), t)
        t += 0.005
        s.update(t)
        if tick == 200 * 900:
            at_15_minutes = s.motor.temperature
    assert s.get("Hardware_Error_Status") == 0 and s.motor.temperature < AMBIENT_C + 2
    assert abs(s.motor.temperature - at_15_minutes) < 0.25


def test_stalled_servo_overheats_in_minutes() -> None:
    """A load it cannot move, with the overload shutdown switched off: stall current until Temperature_Limit."""
    s, t = servo("xl430-w250"), 0.0
    write(s, "Shutdown", tables.HW_OVERHEATING, t)
    write(s, "Torque_Enable", 1, t)
    s.motor.external_load = True
    while not s.get("Hardware_Error_Status") & tables.HW_OVERHEATING:
        t = run(s, t, 1.0, 0.05)
        assert t < 600, "a stalled servo should overheat within minutes"
    expected = THERMAL_TIME_CONSTANT_S * math.log(2.5 / 1.5)  # rise to 1/2.5 of the steady stall rise
    assert t == pytest.approx(expected, rel=0.05)
    assert s.get("Hardware_Error_Status") & tables.HW_OVERLOAD  # flagged after a second, not a shutdown here
    assert not s.torque  # overheating is in Shutdown: torque off


def test_overload_latches_after_a_second_of_saturated_output_and_shuts_down() -> None:
    s, t = servo("xl330-m288"), 0.0
    write(s, "Torque_Enable", 1, t)
    s.motor.external_load = True
    t = run(s, t, 0.9, 0.01)
    assert s.get("Hardware_Error_Status") == 0
    s.refresh()
    assert s.get("Present_Current") == pytest.approx(1470, abs=2)  # stall current, 1 mA units
    assert s.get("Moving_Status") & 0x08  # following error: the load holds it off the trajectory
    t = run(s, t, 0.2, 0.01)
    assert s.get("Hardware_Error_Status") == tables.HW_OVERLOAD and not s.torque  # factory Shutdown 53
    temperature = s.motor.temperature
    run(s, t, 600, 1.0)  # torque off: the load rests and the winding cools
    assert s.motor.temperature < temperature and s.get("Hardware_Error_Status") == tables.HW_OVERLOAD


def test_current_based_position_mode_holds_a_load_at_goal_current_without_overload() -> None:
    """Mode 5 (the Koch gripper): against a load the output stops at Goal_Current, which is not an overload."""
    s, t = servo("xl330-m288"), 0.0
    write(s, "Operating_Mode", 5, t)
    write(s, "Goal_Current", 300, t)
    write(s, "Torque_Enable", 1, t)
    s.motor.external_load = True
    run(s, t, 30.0, 0.05)
    s.refresh()
    assert s.get("Present_Current") == pytest.approx(300, abs=2)
    assert s.get("Hardware_Error_Status") == 0


def test_present_current_and_load_units() -> None:
    """XL330: 1 mA per unit; XM430: 2.69 mA; XL430 (no current sensing): Present_Load in 0.1 % of stall."""
    for model, register, full in (("xl330-m288", "Present_Current", 1470), ("xm430-w350", "Present_Current", 855),
                                  ("xl430-w250", "Present_Load", 1000)):
        s, t = servo(model), 0.0
        write(s, "Torque_Enable", 1, t)
        s.motor.external_load = True
        run(s, t, 0.5, 0.01)
        s.refresh()
        assert s.get(register) == pytest.approx(full, abs=2), model


def test_datasheet_figures_set_the_motor() -> None:
    p = MotorParams.of(tables.model("xl430-w250"))  # 1.4 N.m, 1.3 A, 57 rpm at 11.1 V
    assert p.no_load_speed == pytest.approx(57 / 60 * 4096)
    assert p.resistance == pytest.approx(11.1 / 1.3)
    stall_rise = 1.3 ** 2 * p.resistance * p.thermal_resistance
    assert stall_rise == pytest.approx(2.5 * (72 - AMBIENT_C))
