"""Cost of the per-call observation check (keys, shape, dtype, finiteness, out-of-distribution count) on CPU.

Run: python benchmarks/bench_observation.py [--repeats 20000]
Every runner checks every observation before anything else, also on the calls that only pop a queued
action (ACT: nine calls in ten); this prints what that costs per call next to a 100 Hz control tick
(10 ms), for the bundled packages and an ALOHA-size input (14-D state, one 480x640 camera).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from benchmarks._results import publish  # noqa: E402
from edge.runtime.observation import ObservationProcessor  # noqa: E402
from edge.runtime.package import Normalization, ObservationInput, load_package  # noqa: E402
from edge.runtime.policies import FAMILIES  # noqa: E402
from edge.runtime.timing import call_times_ms  # noqa: E402

DATA = Path(edge.__file__).parent / "data"
TICK_MS = 10.0  # 100 Hz


def observation(inputs: list[ObservationInput], rng: np.random.Generator, scale: float = 0.0) -> dict[str, np.ndarray]:
    """Camera frames at random; states at the training mean plus `scale` standard deviations of noise."""
    obs = {}
    for i in inputs:
        if i.kind == "image":
            obs[i.name] = rng.integers(0, 256, i.shape, dtype=np.uint8)
        else:
            stats = i.normalization.stats
            mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
            obs[i.name] = (mean + scale * std * rng.standard_normal(i.shape)).astype(np.float32)
    return obs


def aloha_inputs() -> list[ObservationInput]:
    """LeRobot's ALOHA sim layout: 14-D state (MEAN_STD with all four statistics) and a 480x640 top camera."""
    stats = {"mean": [0.0] * 14, "std": [1.0] * 14, "min": [-2.0] * 14, "max": [2.0] * 14}
    image_stats = {"mean": [0.5] * 3, "std": [0.25] * 3, "min": [0.0] * 3, "max": [1.0] * 3}
    return [ObservationInput("observation.state", "state", [14], "float32", Normalization("MEAN_STD", stats)),
            ObservationInput("observation.images.top", "image", [480, 640, 3], "uint8",
                             Normalization("MEAN_STD", image_stats))]


def row(name: str, times_ms: np.ndarray) -> str:
    p50, p99 = np.percentile(times_ms, 50) * 1e3, np.percentile(times_ms, 99) * 1e3
    return f"| {name} | {p50:.1f} | {p99:.1f} | {100 * p50 / 1e3 / TICK_MS:.2f}% |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20000)
    ap.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    cases = {f"bundled {f}": load_package(DATA / f"demo_{f}").manifest.inputs for f in FAMILIES}
    cases["ALOHA-size"] = aloha_inputs()
    for name, inputs in cases.items():
        name += " (" + ", ".join(f"{i.name.rsplit('.', 1)[-1]} {i.shape}" for i in inputs) + ")"
        processor = ObservationProcessor(inputs)
        obs = observation(inputs, rng)
        rows.append(row(f"check, {name}", call_times_ms(lambda: processor.check(obs), args.repeats, warmup=100)))
    processor = ObservationProcessor(cases["bundled act"])
    far = observation(cases["bundled act"], rng, scale=10.0)  # every feature beyond 3 std: counted each call
    logging.disable(logging.WARNING)
    rows.append(row("check, bundled act, states out of distribution (counted)",
                    call_times_ms(lambda: processor.check(far), args.repeats, warmup=100)))
    logging.disable(logging.NOTSET)
    act = edge.load_policy(DATA / "demo_act", backend="onnxruntime")
    obs = observation(act.package.manifest.inputs, rng)
    pops = np.empty(args.repeats // 4)
    for k in range(len(pops)):
        if act.queued_actions == 0:
            act.select_action(obs)  # refill the queue outside the timing
        t0 = time.perf_counter()
        act.select_action(obs)
        pops[k] = (time.perf_counter() - t0) * 1e3
    rows.append(row("bundled act: select_action popping a queued action (the check is most of it)", pops))
    table = "\n".join(["| per call | p50 (us) | p99 (us) | p50 share of a 100 Hz tick (10 ms) |",
                       "|---|---:|---:|---:|", *rows])
    body = (table + "\n\nThe check reads every input's type, shape and dtype, casts states to float32, tests them "
            "for finiteness and counts values beyond `ood_margin` standard deviations of the training range; images "
            "are checked by type, shape and dtype only (uint8 cannot be non-finite), so their size barely matters. "
            f"{args.repeats} calls per row, median and 99th percentile.")
    publish("observation", "Per-call observation check", "benchmarks/bench_observation.py", body,
            write=not args.no_write)


if __name__ == "__main__":
    main()
