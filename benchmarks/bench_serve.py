"""Serving benchmark (issue 27): one `edge serve` on this machine, N = 1, 2, 4, 8 robots asking it for chunks.

Default-size policies re-targeted to the emulated 6-servo arm (benchmarks/default_models.py, random weights):
Diffusion (LeRobot 0.4.4 defaults, 96x96 camera) sampled with UniPC-4, and ACT (480x640 camera); plus the bundled
demo ACT, whose compute is about a millisecond, so that its round trip shows the protocol overhead. Each robot is a
process running the real asynchronous executor on a RemotePlanner at a fixed rate with no servos (a synthetic
robot); in the Diffusion N = 2 rows one of the two is a full `edge run --server` on the pty servo emulator with a
video-file camera. Per configuration: batching off (--max-batch 1), on with queue delay 0, on with the chosen
delay. Server and robots share this machine's 2 cores, so the numbers are a CPU floor, not a GPU result.

    python benchmarks/bench_serve.py [--seconds 8] [--queue-delay-us 2000] [--serve-batch 2,4,8] [--no-write]

The server runs in the Python that has nvidia-pytriton (EDGE_SERVE_PYTHON, else ./.venv-serve/bin/python); robots in
--robot-python (tritonclient[grpc] and OpenCV; numpy 2 is fine). Builds the packages with torch on first use (build/bench_defaults, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import publish  # noqa: E402
from tests.serve.conftest import free_ports  # noqa: E402

CLIENTS = (1, 2, 4, 8)
SECONDS = 20.0  # per row, by default
CAMERA = {"diffusion": "observation.image", "act": "observation.images.top"}


def serve_python() -> str:
    python = os.environ.get("EDGE_SERVE_PYTHON") or str(ROOT / ".venv-serve" / "bin" / "python")
    if not Path(python).exists():
        sys.exit("no Python with nvidia-pytriton: make .venv-serve (pip install '.[serve]') or set EDGE_SERVE_PYTHON")
    return python


def start_server(python: str, packages: list[Path], options: list[str]) -> tuple[subprocess.Popen, str]:
    grpc, http, metrics = free_ports(3)
    cmd = [python, "-m", "edge", "serve", *map(str, packages), "--grpc-port", str(grpc), "--http-port", str(http),
           "--metrics-port", str(metrics), "--sampler", "unipc", "--steps", "4", *options]
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check = (f"import sys, tritonclient.grpc as g; c = g.InferenceServerClient('127.0.0.1:{grpc}'); "
             f"sys.exit(0 if all(c.is_model_ready(m) for m in {[p.name for p in packages]!r}) else 1)")
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if process.poll() is not None:
            sys.exit(f"edge serve exited with {process.returncode}")
        if subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
            return process, f"grpc://127.0.0.1:{grpc}"
        time.sleep(1)
    process.kill()
    sys.exit("edge serve was not ready in 300 s")


def observation(manifest, rng: np.random.Generator) -> dict[str, np.ndarray]:  # noqa: ANN001
    obs = {}
    for inp in manifest.inputs:
        if inp.kind == "image":
            obs[inp.name] = rng.integers(0, 256, inp.shape).astype(np.uint8)
        else:
            mean = np.asarray(inp.normalization.stats.get("mean", np.zeros(inp.shape)), np.float32).reshape(inp.shape)
            obs[inp.name] = mean
    return obs


def synthetic_robot(url: str, package: Path, hz: float, seconds: float, seed: int) -> dict:
    """A robot without servos: the asynchronous executor on a RemotePlanner at `hz`, one observation throughout."""
    from edge.robot.executors import AsyncExecutor
    from edge.robot.rate import RateKeeper
    from edge.robot.remote import RemotePlanner

    planner = RemotePlanner(package, url, timeout_ms=600_000, seed=seed)
    planner.connect()
    executor = AsyncExecutor(planner)
    obs = observation(planner.package.manifest, np.random.default_rng(seed))
    rate = RateKeeper(hz)
    ticks = holds = 0
    while ticks / hz < seconds:
        if ticks:
            rate.wait()
        ticks += 1
        result = executor.step(obs, rate.tick)
        holds += result.action is None  # from the first tick: the robot waits for a chunk from then on
    executor.close()
    return stats(planner, ticks, holds, rate.missed, seconds)


def stats(planner, ticks: int, holds: int, missed: int, seconds: float) -> dict:  # noqa: ANN001
    n = planner.round_trip_ms.count
    return {"chunks": n, "chunks_per_s": n / seconds, "rt_p50": planner.round_trip_ms.percentile(50),
            "rt_p99": planner.round_trip_ms.percentile(99), "compute_p50": planner.compute_ms.percentile(50),
            "overhead_p50": planner.overhead_ms.percentile(50), "batch_rows": planner.batch_rows,
            "ticks": ticks, "holds": holds, "missed": missed}


def robot_process(python: str, url: str, package: Path, hz: float, seconds: float, seed: int) -> subprocess.Popen:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); from benchmarks.bench_serve import synthetic_robot; "
            f"print(json.dumps(synthetic_robot({url!r}, __import__('pathlib').Path({str(package)!r}), {hz}, {seconds}, "
            f"{seed})))")
    return subprocess.Popen([python, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def full_run(python: str, url: str, package: Path, hz: float, seconds: float, workdir: Path):  # noqa: ANN201
    """`edge run --server` on the pty servo emulator, a 30 fps video-file camera, the Bus Watchdog 3 servo periods;
    returns (process, finish)."""
    import cv2
    import yaml

    from edge.robot.robot_file import load_robot_config
    from edge.sim.emulated_arm import arm_files, hold_calibration
    from firmware_bridge.emulator import ServoEmulator

    emulator = ServoEmulator({i: "xl430-w250" for i in range(1, 7)})
    emulator.__enter__()
    robot = arm_files(workdir, emulator.port, hz=hz)
    hold_calibration(emulator, load_robot_config(robot).bus)
    video = workdir / "camera.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (96, 96))
    for i in range(60):
        frame = np.full((96, 96, 3), 40, np.uint8)
        frame[30:50, i % 76: i % 76 + 20] = 220
        writer.write(frame)
    writer.release()
    config = yaml.safe_load(robot.read_text())
    config["cameras"] = {CAMERA[package.name]: {"type": "opencv", "source": str(video), "width": 96,
                                                       "height": 96, "fps": 30}}
    # the servo loop runs at the policy's rate here (the package has no fps): the Bus Watchdog must outlast 3 periods
    config["safety"]["watchdog_ms"] = max(config["safety"]["watchdog_ms"], 20 * math.ceil(3e3 / hz / 20))
    robot.write_text(yaml.safe_dump(config))
    summary = workdir / "summary.json"
    process = subprocess.Popen([python, "-m", "edge", "run", "--robot", str(robot), "--policy", str(package),
                                "--server", url, "--server-timeout-ms", "30000", "--duration", str(seconds),
                                "--bus-slack-ms", "20", "--quiet", "--summary", str(summary)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})

    def finish() -> dict:
        out, err = process.communicate(timeout=seconds + 300)
        emulator.__exit__(None, None, None)
        if process.returncode != 0:
            raise RuntimeError(f"edge run --server exited with {process.returncode}: {err[-1000:]}\n{out[-1500:]}")
        s = json.loads(summary.read_text())
        line = next(l for l in out.splitlines() if l.startswith("policy server"))  # noqa: E741
        holds, _, policy_ticks = line.split("held the last goal ")[1].split()[:3]  # "N of M policy ticks"
        chunks = int(line.split(": ")[1].split()[0])
        return {"full": True, "chunks": chunks, "ticks": int(policy_ticks), "holds": int(holds), "missed": s["missed_deadlines"],
                "line": line}
    return process, finish


def run_row(python: str, url: str, package: Path, hz: float, n: int, seconds: float, with_full_run: bool) -> dict:
    procs = [robot_process(python, url, package, hz, seconds, seed) for seed in range(n - with_full_run)]
    finish = None
    if with_full_run:
        workdir = Path(tempfile.mkdtemp(prefix="bench_serve_"))
        _, finish = full_run(python, url, package, hz, seconds, workdir)
    robots = [json.loads(p.communicate(timeout=seconds + 600)[0].strip().splitlines()[-1]) for p in procs]
    full = finish() if finish else None
    synthetic = robots
    chunks = sum(r["chunks"] for r in synthetic)
    return {"n": n, "hz": hz, "chunks_per_s": sum(r["chunks_per_s"] for r in synthetic),
            "rt_p50": float(np.median([r["rt_p50"] for r in synthetic])), "rt_p99": max(r["rt_p99"] for r in synthetic),
            "compute_p50": float(np.median([r["compute_p50"] for r in synthetic])),
            "overhead_p50": float(np.median([r["overhead_p50"] for r in synthetic])),
            "mean_batch": sum(r["batch_rows"] for r in synthetic) / max(chunks, 1),
            "missed": [r["missed"] for r in synthetic] + ([full["missed"]] if full else []),
            "hold_share": [r["holds"] / r["ticks"] for r in synthetic] + ([full["holds"] / full["ticks"]] if full else []),
            "full": full}


def table(results: list[tuple[str, str, dict]], seconds: float, delay: int, serve_batches: tuple[int, ...]) -> str:
    shortened = "" if seconds == SECONDS else f" (shortened from {SECONDS:g} s to fit the time on this shared machine)"
    lines = [f"One `edge serve` and all robots on this machine's 2 cores (server and clients share them; other work "
             f"was running too: load average {os.getloadavg()[0]:.1f} at the end). {seconds:g} s per row{shortened}. "
             "Round "
             "trip, compute and overhead (round trip − server compute) are medians over the synthetic robots of "
             "their own p50 (p99: the worst robot's); mean batch = rows of the batches the requests were in; "
             "missed deadlines and holding share (policy ticks with no action, from the first tick on: waiting for a chunk) per robot; "
             "the robot marked * is a full `edge run --server` on the pty servo emulator with a 30 fps camera. "
             f"Rates: chosen at start so that the server sustains N = 2 (a quarter of its chunk rate per robot, "
             "measured by one robot alone: two robots' chunks contend for the 2 cores, and `edge run` refuses a rate "
             "its round trip cannot cover). "
             f"Queue delay chosen: {delay} us.", "",
             "| policy | batching | queue delay | N | Hz | chunks/s | round trip p50 / p99 ms | compute p50 ms | "
             "overhead p50 ms | mean batch | missed deadlines | holding share |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for policy, config, r in results:
        missed = ", ".join(map(str, r["missed"])) + ("*" if r["full"] else "")
        holds = ", ".join(f"{h:.0%}" for h in r["hold_share"]) + ("*" if r["full"] else "")
        batching, queue = config.split("|")
        lines.append(f"| {policy} | {batching} | {queue} | {r['n']} | {r['hz']:.1f} | {r['chunks_per_s']:.2f} | "
                     f"{r['rt_p50']:.1f} / {r['rt_p99']:.1f} | {r['compute_p50']:.1f} | {r['overhead_p50']:.1f} | "
                     f"{r['mean_batch']:.2f} | {missed} | {holds} |")
    full = [r["full"]["line"] for _, _, r in results if r["full"]]
    if full:
        lines += ["", "Full `edge run --server` robots: " + "; ".join(full)]
    graphs = (f"a policy marked '+batch graphs' is the same package exported with --serve-batch "
              f"{','.join(map(str, serve_batches))} (a batch of n rows runs on the smallest B >= n, padded), the "
              "others run a batch's rows one after another on the batch-1 graphs" if serve_batches else
              "these packages have no batch graphs: a batch's rows run one after another on the batch-1 graphs, so "
              "batching here saves only per-request scheduling")
    lines += ["", f"No GPU was available: the GPU target (chunks/s at N = 8 ≥ 3× N = 1) is unverified; {graphs} "
              "(docs/serving.md)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--queue-delay-us", type=int, default=2000, help="the chosen queue delay row (default 2000)")
    ap.add_argument("--clients", default="1,2,4,8")
    ap.add_argument("--policies", default="diffusion_arm,act_arm,demo_act")
    ap.add_argument("--robot-python", default=sys.executable,
                    help="the robots' Python: tritonclient[grpc] and OpenCV (default: this one)")
    ap.add_argument("--serve-batch", default="", metavar="B,B,...",
                    help="also serve each default-size policy exported with these batch graphs (edge-export "
                         "--serve-batch), beside the same policy without; written to its own RESULTS.md section")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    serve_batches = tuple(int(b) for b in args.serve_batch.split(",") if b)
    from benchmarks.default_models import ARM_MODELS, ensure_package

    python = serve_python()
    robot_python = args.robot_python
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    packages = {}
    for name in args.policies.split(","):  # each model is named after its package directory: link a named one
        if name == "demo_act":  # the bundled tiny ACT: compute ~1 ms, so its round trip is mostly protocol
            packages[name] = ROOT / "edge" / "data" / "demo_act"
            continue
        variants = {name: ()} | ({f"{name}+batch graphs": serve_batches} if serve_batches else {})
        for label, batches in variants.items():
            link = ROOT / "build" / "bench_serve" / (name.replace("_arm", "") + ("_batched" if batches else ""))
            link.parent.mkdir(parents=True, exist_ok=True)
            target = ensure_package(ARM_MODELS[name], log, batches)
            if link.is_symlink() and link.resolve() != target.resolve():
                link.unlink()
            if not link.is_symlink():
                link.symlink_to(target)
            packages[label] = link
    clients = [int(c) for c in args.clients.split(",")]
    configs = {"off|-": ["--max-batch", "1"], "on (8)|0 us": ["--max-batch", "8", "--queue-delay-us", "0"],
               f"on (8)|{args.queue_delay_us} us": ["--max-batch", "8", "--queue-delay-us", str(args.queue_delay_us)]}
    results, rates = [], {}
    for config, options in configs.items():
        server, url = start_server(python, list(packages.values()), options)
        try:
            for name, package in packages.items():
                if name not in rates:  # a quarter of the server's chunk rate per robot, from one robot's compute
                    probe = json.loads(robot_process(robot_python, url, package, 5.0, 3.0, 99).communicate()[0])
                    from edge.runtime.package import load_package

                    steps = load_package(package).manifest.chunking.n_action_steps
                    rates[name] = round(min(30.0, steps / (4 * probe["compute_p50"] / 1e3)), 1)
                for n in clients:
                    log(f"{name}: batching {config}, N = {n} at {rates[name]} Hz")
                    full = (n == 2 and name == "diffusion_arm" and config.endswith(f"{args.queue_delay_us} us")
                            and not serve_batches)
                    results.append((name.replace("_arm", " (default size)"), config, run_row(robot_python, url, package, rates[name], n,
                                                                               args.seconds, full)))
        finally:
            server.terminate()
            server.wait(timeout=60)
    key, title = (("serving_batch_graphs", "Serving: batch graphs end to end (edge serve on Triton, N robots)")
                  if serve_batches else ("serving", "Serving (edge serve on Triton, N robots)"))
    publish(key, title, "benchmarks/bench_serve.py", table(results, args.seconds, args.queue_delay_us, serve_batches),
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
