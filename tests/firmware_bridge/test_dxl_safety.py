"""Safety layer on the bus: sanitizing goals, fault reactions inside the error window, shutdown, signals."""

from __future__ import annotations

import math
import os
import signal
import time

import pytest

from firmware_bridge import tables
from firmware_bridge.bus import DynamixelBus
from firmware_bridge.emulator import ServoEmulator
from firmware_bridge.safety import SafetyConfig, SafetyLayer, SafetyStop

WINDOW = 0.05
TICK = 0.01


def limits_around(bus: DynamixelBus, half_range: int = 200) -> dict[str, tuple[int, int]]:
    return {m: (p - half_range, p + half_range) for m, p in bus.sync_read("Present_Position").items()}


def make(bus: DynamixelBus, **config) -> SafetyLayer:
    return SafetyLayer(bus, limits_around(bus), SafetyConfig(**{"max_step_ticks": 20, "error_window_s": WINDOW,
                                                                "watchdog_ms": 100, **config}))


def goal_writes(emulator: ServoEmulator) -> dict[int, list[int]]:
    return {i: [v for name, v in s.writes if name == "Goal_Position"] for i, s in emulator.servos.items()}


def test_start_writes_goal_equal_present_before_torque_on(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    present = bus.sync_read("Present_Position")
    bus.sync_write("Goal_Position", {m: p + 150 for m, p in present.items()})  # a stale goal
    safety = make(bus)
    assert safety.start() == present
    assert set(bus.sync_read("Bus_Watchdog").values()) == {5}  # 100 ms in 20 ms units
    time.sleep(0.05)
    assert bus.sync_read("Present_Position") == present
    assert set(bus.sync_read("Torque_Enable").values()) == {1}
    assert [w[-1] for w in goal_writes(emulator).values()] == list(present.values())


def test_start_refuses_joints_outside_limits(bus: DynamixelBus) -> None:
    limits = limits_around(bus)
    limits["gripper"] = (0, 10)
    with pytest.raises(ValueError, match="gripper"):
        SafetyLayer(bus, limits, SafetyConfig(max_step_ticks=10)).start()
    assert set(bus.sync_read("Torque_Enable").values()) == {0}


def test_per_joint_step_cap(bus: DynamixelBus) -> None:
    steps = {m: 5 for m in bus.motors} | {"gripper": 50}
    safety = SafetyLayer(bus, limits_around(bus), SafetyConfig(max_step_ticks=steps))
    present = safety.start()
    sent = safety.step({m: p + 100 for m, p in present.items()})
    assert sent == {m: p + steps[m] for m, p in present.items()}
    with pytest.raises(ValueError, match="no entry for \\['wrist_roll'\\]"):
        SafetyLayer(bus, limits_around(bus), SafetyConfig(max_step_ticks={m: 5 for m in list(bus.motors)[:-2]} | {"gripper": 5}))
    safety.shutdown()


def test_step_clamps_caps_and_rejects(bus: DynamixelBus) -> None:
    safety = make(bus)
    present = safety.start()
    lo, hi = safety.limits["elbow_flex"]
    goals = {**{m: p + 5 for m, p in present.items()}, "elbow_flex": hi + 1000, "wrist_flex": math.nan,
             "wrist_roll": -math.inf}
    del goals["gripper"]
    sent = safety.step(goals)
    assert sent["shoulder_pan"] == present["shoulder_pan"] + 5
    assert sent["elbow_flex"] == present["elbow_flex"] + 20
    assert sent["wrist_flex"] == present["wrist_flex"] and sent["wrist_roll"] == present["wrist_roll"]
    assert sent["gripper"] == present["gripper"]
    c = safety.counters
    assert (c.clamped, c.step_capped, c.non_finite, c.missing) == (1, 1, 2, 1)
    for _ in range(30):
        sent = safety.step({"elbow_flex": hi + 1000})
    assert sent["elbow_flex"] == hi
    assert bus.read("Goal_Position", "elbow_flex") == hi
    with pytest.raises(ValueError, match="unknown motors \\['tail'\\]"):
        safety.step({"tail": 1.0})
    safety.shutdown()
    assert set(bus.sync_read("Torque_Enable").values()) == {0}
    assert bus.is_connected  # the layer never releases a bus it does not own


@pytest.mark.parametrize("kwargs,message", [
    ({"max_step_ticks": 0}, "max_step_ticks"), ({"max_step_ticks": {"gripper": -1}}, "max_step_ticks"), ({"max_step_ticks": 5, "reaction": "panic"}, "reaction"),
    ({"max_step_ticks": 5, "watchdog_ms": 5}, "watchdog_ms"), ({"max_step_ticks": 5, "error_window_s": 0}, "error_window_s"),
])
def test_config_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SafetyConfig(**kwargs)


FAULTS = {
    "dropped reply": lambda emu: emu.drop_replies(3, -1),
    "corrupted CRC": lambda emu: emu.corrupt_replies(3, -1),
    "delayed reply": lambda emu: emu.delay_replies(3, 0.05, -1),
    "overload": lambda emu: emu.hardware_error(3, tables.HW_OVERLOAD),
    "overheating": lambda emu: emu.hardware_error(3, tables.HW_OVERHEATING),
    "servo vanishes": lambda emu: emu.vanish(3),
}


def run(safety: SafetyLayer, ticks: int, swing: int = 400, until=lambda: False) -> float:
    """Policy that swings far past the limits (all of it must be sanitized); returns the longest tick."""
    longest = 0.0
    for k in range(ticks):
        start = time.monotonic()
        present = safety.observe()
        safety.step({m: p + swing * (-1) ** (k // 5) for m, p in present.items()})
        longest = max(longest, time.monotonic() - start)
        if until():
            break
        time.sleep(TICK)
    return longest


@pytest.mark.parametrize("reaction", ["hold", "torque_off"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_reaction_within_window_stays_in_force_through_shutdown(bus: DynamixelBus, emulator: ServoEmulator,
                                                                      fault: str, reaction: str) -> None:
    safety = make(bus, reaction=reaction, rest_pose={"shoulder_pan": bus.read("Present_Position", "shoulder_pan")})
    safety.start()
    run(safety, 10)
    assert safety.tripped is None and safety.counters.reactions == 0
    FAULTS[fault](emulator)
    longest_tick = run(safety, 200, until=lambda: safety.tripped is not None)
    assert safety.tripped is not None and safety.counters.reactions == 1
    if fault in ("overload", "overheating"):  # the factory Shutdown turns torque off: read back, no window to wait
        assert "torque off on elbow_flex" in safety.tripped and safety.tripped.startswith("hardware error")
        assert safety.counters.hardware_errors == 1 and 3 in emulator.servos and "elbow_flex" in safety.faulted
    else:  # checked at every observe/step: at most one tick (plus the sleep between ticks) after the window
        assert WINDOW <= safety.reaction_delay_s <= WINDOW + longest_tick + TICK + 0.005
        assert safety.counters.comm_errors >= 1
    time.sleep(0.02)  # the reaction's own broadcast write lands
    written, suppressed = sum(map(len, goal_writes(emulator).values())), safety.counters.suppressed
    run(safety, 5)  # tripped: policy goals are no longer forwarded
    assert safety.counters.suppressed == suppressed + 5
    assert sum(map(len, goal_writes(emulator).values())) == written
    reachable = [i for i in emulator.servos if i != 3]
    torque = 0 if reaction == "torque_off" else 1
    assert all(emulator.register(i, "Torque_Enable") == torque for i in reachable)
    for servo_id, values in goal_writes(emulator).items():
        lo, hi = safety.limits[list(bus.motors)[servo_id - 1]]
        assert all(lo <= v <= hi for v in values[1:]), f"servo {servo_id} got a goal outside {lo}..{hi}"

    # The reaction stays in force through shutdown: no rest-pose motion, and `hold` keeps torque on.
    safety.shutdown()
    assert sum(map(len, goal_writes(emulator).values())) == written
    assert all(emulator.register(i, "Torque_Enable") == torque for i in reachable)


def test_fault_shorter_than_window_needs_no_reaction(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    safety = make(bus, error_window_s=0.3, watchdog_ms=1000)  # the servo's watchdog outlasts the silence too
    safety.start()
    emulator.drop_replies(3, 1)  # one lost reply: absorbed by the bus retries
    run(safety, 3)
    assert safety.counters.comm_errors == 0
    emulator.vanish(3)
    run(safety, 1)
    emulator.reappear(3)
    run(safety, 3)  # good reads close the episode ...
    assert safety.counters.comm_errors >= 1
    deadline = time.monotonic() + 0.4
    while time.monotonic() < deadline:  # ... so outliving the window takes no reaction
        run(safety, 1)
    assert safety.counters.reactions == 0 and safety.tripped is None
    safety.shutdown()


def test_watchdog_stops_the_arm_when_the_loop_dies(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    bus.sync_write("Profile_Velocity", {m: 3 for m in bus.motors})  # ~47 ticks/s: slow enough to catch mid-move
    safety = make(bus, watchdog_ms=60, max_step_ticks=100)
    present = safety.start()
    safety.step({m: p + 100 for m, p in present.items()})
    time.sleep(0.4)  # the "process" stopped talking
    stopped = emulator.register(1, "Present_Position")
    assert emulator.register(1, "Bus_Watchdog") == 255
    assert present["shoulder_pan"] < stopped < present["shoulder_pan"] + 100
    time.sleep(0.1)
    assert emulator.register(1, "Present_Position") == stopped
    safety.shutdown()


def test_signal_stops_moves_to_rest_and_releases(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    present = bus.sync_read("Present_Position")
    rest = {"gripper": present["gripper"] - 60, "wrist_flex": present["wrist_flex"] + 60}
    previous = signal.getsignal(signal.SIGTERM)
    safety = make(bus, rest_pose=rest, rest_tick_s=0.005)
    with pytest.raises(SafetyStop), safety:
        for _ in range(100):
            safety.step(safety.observe())
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(TICK)
    assert safety.counters.signals == 1
    assert bus.is_connected  # the layer never releases a bus it does not own
    assert all(emulator.register(i, "Torque_Enable") == 0 for i in emulator.servos)
    assert abs(emulator.register(6, "Present_Position") - rest["gripper"]) <= 20
    assert abs(emulator.register(4, "Present_Position") - rest["wrist_flex"]) <= 20
    assert signal.getsignal(signal.SIGTERM) is previous
    with pytest.raises(SafetyStop):
        safety.step({})


def test_a_servo_reset_trips_at_once_and_its_joint_is_never_commanded_again(bus: DynamixelBus,
                                                                           emulator: ServoEmulator) -> None:
    safety = make(bus, error_window_s=5.0)  # far beyond the test: a reset must not wait for the window
    safety.start()
    run(safety, 4)
    emulator.power_off(3)
    emulator.reappear(3, power_cycled=True)  # back with factory RAM: torque off, Bus_Watchdog 0
    powered_up = len(emulator.servos[3].writes)
    run(safety, 6)
    assert safety.tripped is not None and "servo reset: elbow_flex" in safety.tripped
    assert safety.counters.reactions == 1 and safety.limp == {"elbow_flex"}
    assert [v for name, v in list(emulator.servos[3].writes)[powered_up:] if name == "Goal_Position"] == []
    assert all(emulator.register(i, "Torque_Enable") == 1 for i in emulator.servos if i != 3)  # hold
    safety.shutdown()


def test_a_fired_watchdog_is_re_armed_and_a_fault_in_the_window(bus: DynamixelBus, emulator: ServoEmulator) -> None:
    safety = make(bus, error_window_s=5.0)
    safety.start()
    run(safety, 2)
    for servo_id in emulator.servos:  # as if the loop had stalled past the watchdog
        emulator.servos[servo_id].put("Bus_Watchdog", tables.WATCHDOG_FIRED)
    run(safety, 4)
    assert safety.tripped is None and safety.faults._since is not None  # an episode, not a reaction
    assert set(bus.sync_read("Bus_Watchdog").values()) == {5}  # armed again
    safety.shutdown()
