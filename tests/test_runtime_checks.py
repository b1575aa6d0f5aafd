"""Every observation checked on every call of every family; far-out states counted; non-finite actions refused."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import edge
from edge.cli import main as edge_main
from edge.robot.executors import AsyncExecutor
from edge.robot.robot_file import load_robot_config
from edge.runtime.package import sha256_file
from edge.sim.emulated_arm import BUS_SLACK_MS, arm_files, hold_calibration
from firmware_bridge.emulator import ARM_JOINTS, ServoEmulator

DATA = Path(edge.__file__).parent / "data"
CAM_CASES = ["act_cam", "diffusion_cam", "vqbet_cam"]
IMAGE = "observation.images.top"
STATE = "observation.state"
ENV = "observation.environment_state"


@pytest.fixture(scope="module")
def cam_policies(export_fixture, reference_rollout):
    """{case: (policy, a good first observation from LeRobot's rollout)}."""
    out = {}
    for case in CAM_CASES:
        ref = reference_rollout(case)
        policy = edge.load_policy(export_fixture(case), seed=0) if case != "act_cam" else \
            edge.load_policy(export_fixture(case))
        out[case] = policy, {n: ref[f"obs.0.{n}"] for n in policy.input_names}
    return out


BAD_OBSERVATIONS = [
    (lambda o: o.pop(STATE), r"missing key\(s\) \['observation.state'\]"),
    (lambda o: o.update({STATE: np.zeros(5, np.float32)}), r"observation.state: expected shape \(6,\)"),
    (lambda o: o.update({STATE: np.array([0, 0, np.nan, 0, 0, 0], np.float32)}), r"observation.state: non-finite.*\[2\]"),
    (lambda o: o.update({STATE: np.zeros(6, np.complex64)}), r"observation.state: expected a real numeric array"),
    (lambda o: o.update({STATE: np.zeros(6, bool)}), r"observation.state: expected a real numeric array"),
    (lambda o: o.update({STATE: [0.0] * 6}), r"observation.state: expected a numpy array"),
    (lambda o: o.update({IMAGE: np.zeros((480, 640, 3), np.uint8)}), r"observation.images.top: expected shape"),
    (lambda o: o.update({IMAGE: o[IMAGE].astype(np.float32)}), r"observation.images.top: images must be uint8"),
    (lambda o: o.update({IMAGE: np.ascontiguousarray(o[IMAGE].transpose(2, 0, 1))}), r"images.top: expected shape"),
]


@pytest.mark.parametrize("case", CAM_CASES)
@pytest.mark.parametrize("mutate, message", BAD_OBSERVATIONS)
def test_every_call_checks_the_observation(cam_policies, case, mutate, message):
    """Also the calls that only pop a queued action (ACT: nine calls in ten); the refused call changes nothing."""
    policy, good = cam_policies[case]
    policy.reset()
    policy.select_action(good)
    queued, steps = policy.queued_actions, policy.steps
    assert queued > 0  # the next call would not run a graph
    bad = dict(good)
    mutate(bad)
    with pytest.raises(edge.ObservationError, match=message):
        policy.select_action(bad)
    assert (policy.queued_actions, policy.steps) == (queued, steps)


def test_real_numeric_states_are_cast_to_float32(export_fixture):
    policy = edge.load_policy(export_fixture("act_env"))
    obs = {STATE: np.array([1, -2, 0, 1, 0, -1], np.float32), ENV: np.array([0, 1, 0, 0], np.float32)}
    reference = policy.predict_action_chunk(obs)
    for dtype in (np.float64, np.float16, np.int64, np.int8, np.uint8):
        cast = {k: np.abs(v).astype(dtype) if dtype == np.uint8 else v.astype(dtype) for k, v in obs.items()}
        expected = policy.predict_action_chunk({k: v.astype(np.float32) for k, v in cast.items()})
        np.testing.assert_array_equal(policy.predict_action_chunk(cast), expected)
    np.testing.assert_array_equal(policy.predict_action_chunk({k: v.astype(np.float64) for k, v in obs.items()}),
                                  reference)
    with pytest.raises(edge.ObservationError, match=r"observation.state: non-finite value\(s\) at index \[0\] "
                                                    r"\(after conversion to float32\)"):
        policy.select_action({**obs, STATE: np.array([1e39, 0, 0, 0, 0, 0])})


def test_far_out_states_are_counted_and_warned_once(export_fixture, caplog):
    policy = edge.load_policy(export_fixture("act_env"))
    stats = policy.package.manifest.inputs[0].normalization.stats
    inside = np.asarray(stats["max"], np.float32)  # the training maximum is in distribution
    far = inside.copy()
    far[4] = stats["max"][4] + 3.5 * stats["std"][4]  # beyond max + 3 std
    env = np.zeros(4, np.float32)
    counts = policy.out_of_distribution
    policy.reset()
    with caplog.at_level(logging.WARNING, logger="edge.runtime.observation"):
        for state in (inside, far, far, inside, far):
            policy.select_action({STATE: state, ENV: env})
    assert dict(counts) == {STATE: 3, ENV: 0}  # a live view, readable at any time
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("observation.state: value") and "index 4" in warnings[0]
    policy.reset()
    assert dict(policy.out_of_distribution) == {STATE: 0, ENV: 0}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edge.runtime.observation"):
        policy.select_action({STATE: far, ENV: env})  # warned again after reset
    assert len(caplog.records) == 1

    lenient = edge.load_policy(export_fixture("act_env"), ood_margin=10.0)
    lenient.select_action({STATE: far, ENV: env})
    assert dict(lenient.out_of_distribution) == {STATE: 0, ENV: 0}
    with pytest.raises(edge.OptionError, match="ood_margin"):
        edge.load_policy(export_fixture("act_env"), ood_margin=-1)


def test_extreme_state_gives_a_named_policy_output_error(export_fixture):
    """The 1e30 of the issue: counted as out of distribution, and the NaN actions it produces are refused by name."""
    policy = edge.load_policy(export_fixture("act_env"))
    good = {STATE: np.zeros(6, np.float32), ENV: np.zeros(4, np.float32)}
    policy.reset()
    for _ in range(policy.chunking.n_action_steps):  # a full queue: these calls run no graph
        policy.select_action(good)
    with pytest.raises(edge.PolicyOutputError, match=r"non-finite action for step 10: action index \[0, 1, 2, 3, 4, 5\]"
                                                     r".*'observation.environment_state': 1"):
        policy.select_action({STATE: good[STATE], ENV: np.array([1e30, 0, 0, 0], np.float32)})


def poison(pkg: Path, graph: str) -> None:
    """Fill the graph's largest float initializer with NaN and record the new hash: a consistent, broken package."""
    path = pkg / f"{graph}.onnx"
    model = onnx.load(str(path))
    floats = [t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    target = max(floats, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(target)
    target.CopyFrom(numpy_helper.from_array(np.full_like(values, np.nan), target.name))
    onnx.save(model, str(path))
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["graphs"][graph]["sha256"] = sha256_file(path)
    (pkg / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("family, graph", [("act", "act"), ("diffusion", "denoiser"), ("vqbet", "decode")])
def test_non_finite_graph_output_is_refused(tmp_path, family, graph):
    pkg = tmp_path / family
    shutil.copytree(DATA / f"demo_{family}", pkg)
    poison(pkg, graph)
    policy = edge.load_policy(pkg)
    obs = {i.name: np.zeros(i.shape, np.uint8 if i.kind == "image" else np.float32) for i in policy.package.manifest.inputs}
    with pytest.raises(edge.PolicyOutputError, match=f"the {family} policy returned a non-finite action for step 0: "
                                                     r"action index \[0, 1, 2, 3, 4, 5\] is nan"):
        policy.select_action(obs)
    with pytest.raises(edge.PolicyOutputError, match="row 0 of the chunk"):
        policy.predict_action_chunk(obs)


def test_async_execution_names_the_tick(tmp_path):
    pkg = tmp_path / "act"
    shutil.copytree(DATA / "demo_act", pkg)
    poison(pkg, "act")
    executor = AsyncExecutor(edge.load_policy(pkg))
    obs = {STATE: np.zeros(6, np.float32), ENV: np.zeros(4, np.float32)}
    try:
        with pytest.raises(edge.PolicyOutputError, match="chunk planned at tick 0: .*row 0 of the chunk"):
            for tick in range(200):
                executor.step(obs, tick)
                executor._thread.join(0.01)
    finally:
        executor.close()


def test_edge_run_stops_with_status_3_and_moves_nothing(export_fixture, tmp_path, capsys):
    """A non-finite policy output ends `edge run` with exit status 3 and one line; no goal but the start pose is sent."""
    with ServoEmulator({i: "xl430-w250" for i in range(1, len(ARM_JOINTS) + 1)}) as emulator:
        robot = arm_files(tmp_path, emulator.port, hz=20.0)
        hold_calibration(emulator, load_robot_config(robot).bus)
        start = {i: emulator.register(i, "Present_Position") for i in emulator.servos}
        status = edge_main(["run", "--robot", str(robot), "--policy", str(export_fixture("act_env")), "--quiet",
                            "--feature", f"{ENV}=1e30,0,0,0", "--duration", "2", "--bus-slack-ms", str(BUS_SLACK_MS)])
        goals = {i: [v for name, v in servo.writes if name == "Goal_Position"] for i, servo in emulator.servos.items()}
        torque = {i: servo.get("Torque_Enable") for i, servo in emulator.servos.items()}
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 3
    assert err[-1].startswith("error: the act policy returned a non-finite action for step 0")
    assert all(set(values) <= {start[i]} for i, values in goals.items()), goals
    assert set(torque.values()) == {0}


@pytest.mark.parametrize("hz", [0, -5, 1e30, float("nan"), 5000])
def test_control_rates_the_loop_cannot_keep_are_refused(hz, capsys):
    """A robot file or --hz of 1e30 Hz would never reach its --duration (found by the fuzzer)."""
    from edge.robot.rate import RateKeeper

    with pytest.raises(edge.OptionError, match=r"control rate must be in \(0, 1000\] Hz"):
        RateKeeper(hz)
    if hz > 1000:  # the robot file refuses the others itself
        assert edge_main(["demo", "--hz", str(hz), "--quiet"]) == 2
        assert "control rate must be" in capsys.readouterr().err
