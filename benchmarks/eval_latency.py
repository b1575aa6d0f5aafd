"""Closed loop under inference delay: the bundled demo policies with each chunk merged D ticks after its observation.

    python benchmarks/eval_latency.py [--episodes act=500 diffusion=200 vqbet=60] [--seed 1000] [--jobs 2]
                                      [--delays 0 1 2 4 6 8 10 12] [--families act diffusion vqbet] [--no-write]

Each row runs the robot's execution core on a virtual clock (edge eval --delay-ticks D --merge RULE) on the same
seeded scenes with the policy's sampler reseeded per episode, so every row is paired with the synchronous row
(LeRobot's select_action, inference in zero time) episode by episode: Δ is the paired difference in success
with its 95% interval (normal approximation on the per-episode differences). VQ-BeT runs "latest" only: with
n_action_steps = P = 5 a chunk always arrives when the previous one has run out, so there is no overlap for a
rule to merge and the rules give identical actions. Rows run in a process pool (--jobs), each process single-
threaded. RESULTS.md section "latency"; with --families, only those families' rows (and target lines) are
replaced there, the other families' rows are kept as the previous run wrote them, under that run's stamp.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import RESULTS, publish  # noqa: E402
from edge.robot.chunks import merge_rules  # noqa: E402
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from edge.runtime.guidance import RTCOptions  # noqa: E402
from edge.runtime.package import load_package  # noqa: E402
from edge.runtime.policies import FAMILIES, runner_class  # noqa: E402
from edge.sim.evaluate import evaluate, markdown_table  # noqa: E402

DATA = ROOT / "edge" / "data"
DELAYS = (0, 1, 2, 4, 6, 8, 10, 12)  # 10: ACT's ⌊P/2⌋
EPISODES = {"act": 500, "diffusion": 200, "vqbet": 60}
POLICY_SEED = 0
COLUMNS = ("family", "D", "merge", "episodes", "success %", "Δ vs sync [95% CI]", "seams / episode",
           "seam jump p95", "seam jump max", "jerk rms (units/s³)", "dropped / episode", "holding %",
           "collisions", "timeouts", "frozen episodes")


@lru_cache(maxsize=None)
def policy(family: str) -> Any:
    """One runner per family per process, single-threaded ONNX Runtime."""
    package = load_package(DATA / f"demo_{family}")
    cls = runner_class(package.manifest.policy_type)
    options = {} if family == "act" else {"seed": POLICY_SEED}
    return cls(package, OnnxRuntimeBackend(threads=1), **options)


def run_row(job: tuple[str, int | None, str, int, int]) -> dict[str, Any]:
    family, delay, merge, episodes, seed = job
    runner = policy(family)
    if hasattr(runner, "use_rtc"):
        runner.use_rtc(RTCOptions() if merge == "rtc" else None)
    t0 = time.perf_counter()
    result = evaluate(runner, episodes, seed, delay_ticks=delay, merge=merge, notify=lambda _msg: None)
    return {"family": family, "delay": delay, "merge": merge, "summary": result.summary(),
            "success": np.array([o[0] for o in result.outcomes], float), "seconds": time.perf_counter() - t0,
            "plan_rows": plan_rows(runner)}


def plan_rows(runner: Any) -> int:
    """P: the rows `plan` returns (Diffusion's plan is chunk[n_obs_steps-1:], the others' the whole chunk)."""
    c = runner.chunking
    return c.chunk_size - c.n_obs_steps + 1 if runner.policy_type == "diffusion" else c.chunk_size


def paired(row: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Mean paired difference (points) and the half-width of its 95% interval."""
    diff = row - reference
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return 100 * diff.mean(), 100 * half


def table_row(r: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    s, n = r["summary"], r["summary"]["episodes"]
    delta, half = paired(r["success"], reference["success"])
    return [r["family"], "sync" if r["delay"] is None else str(r["delay"]), r["merge"] if r["delay"] is not None
            else "—", str(n), f"{100 * s['success_rate']:.1f}",
            "—" if r is reference else f"{delta:+.1f} [{delta - half:+.1f}, {delta + half:+.1f}]",
            f"{s['seams']['count'] / n:.1f}", f"{s['seams']['jump_p95']:.2f}", f"{s['seams']['jump_max']:.2f}",
            f"{s['jerk_rms']:.0f}", f"{s['dropped'] / n:.1f}", f"{100 * s['holding_share']:.1f}",
            str(s["collisions"]), str(s["timeouts"]), str(s["frozen_episodes"])]


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets for D <= P // 2, and what happens beyond."""
    lines = []
    by = {(r["family"], r["delay"], r["merge"]): r for r in rows}
    for family in sorted({r["family"] for r in rows}):
        sync = by[(family, None, "latest")]
        p = sync["plan_rows"]
        bound = p // 2
        within = [d for d in sorted({r["delay"] for r in rows if r["family"] == family and r["delay"] is not None})
                  if d <= bound]
        rules = sorted({r["merge"] for r in rows if r["family"] == family and r["delay"] is not None})
        if family == "diffusion" and "rtc" in rules:
            worst = min(paired(by[(family, d, "rtc")]["success"], sync["success"])[0] for d in within)
            ratios = [by[(family, d, "rtc")]["summary"]["seams"]["jump_p95"]
                      / max(by[(family, d, "latest")]["summary"]["seams"]["jump_p95"], 1e-9) for d in within]
            lines.append(f"- diffusion (P = {p}), D <= {bound}: rtc's worst Δ vs sync {worst:+.1f} points (target >= "
                         f"-2: {'met' if worst >= -2 else 'NOT met'}); seam jump p95 rtc / latest at most "
                         f"{max(ratios):.2f} (target <= 0.33: {'met' if max(ratios) <= 1 / 3 else 'NOT met'})")
        else:
            best = {d: max(rules, key=lambda m: by[(family, d, m)]["summary"]["success_rate"]) for d in within}
            worst = min(paired(by[(family, d, best[d])]["success"], sync["success"])[0] for d in within)
            lines.append(f"- {family} (P = {p}), D <= {bound}: the best rule's worst Δ vs sync {worst:+.1f} points "
                         f"(target >= -3: {'met' if worst >= -3 else 'NOT met'}); best rule per D: "
                         + ", ".join(f"{d}: {m}" for d, m in best.items()))
        beyond = [r for r in rows if r["family"] == family and r["delay"] is not None and r["delay"] > bound]
        if beyond:
            frozen = sum(r["summary"]["frozen_episodes"] for r in beyond)
            worst_row = min(beyond, key=lambda r: r["summary"]["success_rate"])
            lines.append(f"  beyond D = {bound} (2·D > P: each chunk executes from its first row at arrival, the arm "
                         f"holds between chunks): frozen episodes {frozen}; lowest success "
                         f"{100 * worst_row['summary']['success_rate']:.1f}% (D = {worst_row['delay']}, "
                         f"{worst_row['merge']}: {worst_row['summary']['collisions']} collisions, "
                         f"{worst_row['summary']['timeouts']} timeouts, holding "
                         f"{100 * worst_row['summary']['holding_share']:.0f}% of ticks)")
    return lines


def by_family(lines: list[str]) -> dict[str, list[str]]:
    """Table rows ("| act | ...") or target lines ("- act (P = 20) ...", continued by indented lines) by family."""
    groups: dict[str, list[str]] = {}
    family = None
    for line in lines:
        if line.startswith("| "):
            family = line.strip("|").split("|")[0].strip()
        elif line.startswith("- "):
            family = line[2:].split(" ", 1)[0]
        elif not line.startswith("  "):
            family = None
        if family in FAMILIES:
            groups.setdefault(family, []).append(line)
    return groups


def kept(families: list[str]) -> tuple[str, dict[str, list[str]], dict[str, list[str]]]:
    """From RESULTS.md's current section: its stamp, and per family not in `families` its table rows and its
    target lines, so a run of some families leaves the others' rows as the previous run wrote them."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    section = re.search(r"<!-- section:latency -->(.*?)<!-- /section:latency -->", text, re.S)
    lines = section.group(1).splitlines() if section else []
    stamp = next((line for line in lines if line.startswith("_benchmarks/")), "")
    table = [line for line in lines if line.startswith("| ")]
    targets_at = next((i for i, line in enumerate(lines) if line.startswith("Targets")), len(lines))
    others = lambda groups: {f: g for f, g in groups.items() if f not in families}  # noqa: E731
    return stamp, others(by_family(table)), others(by_family(lines[targets_at + 1:]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", nargs="*", default=[], metavar="FAMILY=N", help="episodes per row per family")
    p.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--delays", nargs="*", type=int, default=list(DELAYS))
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--no-write", action="store_true", help="print the table, leave RESULTS.md alone")
    args = p.parse_args(argv)
    episodes = dict(EPISODES, **{k: int(v) for k, v in (e.split("=") for e in args.episodes)})
    jobs = []
    for family in args.families:
        rules = ("latest",) if family == "vqbet" else merge_rules(family)
        jobs.append((family, None, "latest", episodes[family], args.seed))
        jobs += [(family, d, m, episodes[family], args.seed) for d in args.delays for m in rules]
    jobs.sort(key=lambda j: -{"act": 0.012, "diffusion": 0.14, "vqbet": 1.0}[j[0]] * j[3])  # longest first
    t0 = time.perf_counter()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        rows = []
        for r in pool.map(run_row, jobs):
            rows.append(r)
            print(f"  {len(rows)}/{len(jobs)} {r['family']} D={r['delay']} {r['merge']}: "
                  f"{100 * r['summary']['success_rate']:.1f}% in {r['seconds']:.0f} s "
                  f"({time.perf_counter() - t0:.0f} s so far)", file=sys.stderr, flush=True)
    order = {f: i for i, f in enumerate(FAMILIES)}
    rows.sort(key=lambda r: (order[r["family"]], -1 if r["delay"] is None else r["delay"], r["merge"]))
    refs = {r["family"]: r for r in rows if r["delay"] is None}
    counts = ", ".join(f"{f} {episodes[f]}" for f in args.families)
    stamp, old_rows, old_targets = kept(args.families)
    table = markdown_table([table_row(r, refs[r["family"]]) for r in rows], COLUMNS).splitlines()
    new_rows, new_targets = by_family(table[2:]), by_family(targets(rows))
    lines = table[:2] + [line for f in FAMILIES for line in new_rows.get(f, old_rows.get(f, []))]
    target_lines = [line for f in FAMILIES for line in new_targets.get(f, old_targets.get(f, []))]
    note = (f" Rows of {', '.join(sorted(old_rows))} are kept from the previous run ({stamp.strip('_')}); this run "
            f"rewrote {', '.join(args.families)} only." if old_rows else "")
    body = "\n".join([
        f"The bundled demo packages on the reach task ({counts} episodes a row; seed {args.seed}; the same scenes "
        "and sampler draws in every row of a family), each chunk merged D ticks after its observation tick by the "
        "robot's execution core on a virtual clock (`edge eval --delay-ticks D --merge RULE`). sync: LeRobot's "
        "select_action. Δ: paired difference in success against sync, points, 95% interval. Seams: merges that "
        "changed the action of their merge tick; jump in policy units (the arm's ±100 range); sync's seams are "
        "each new chunk's first action against the last executed one. Jerk: third difference of the executed "
        "goals over dt³ (20 Hz), RMS over ticks and joints. Holding: ticks with no fresh action, including the "
        "first D ticks of every episode. Frozen: episodes in which not one action executed. forecast (ACT): each "
        "chunk planned from the observed state moved by the committed goals over the delay and executed from its "
        "row 0 for n_action_steps ticks, as synchronously; exact here because the simulated arm reaches each of this "
        "policy's goals within a tick (docs/robot_loop.md has it on a lagging arm). VQ-BeT: latest only "
        f"(no overlap to merge, see the script). ONNX Runtime, 1 thread per process, {args.jobs} processes, "
        f"{time.perf_counter() - t0:.0f} s wall." + note,
        "",
        *lines,
        "",
        "Targets (issue 22, point 8):",
        *target_lines,
    ])
    publish("latency", "Closed loop under inference delay", "benchmarks/eval_latency.py", body, not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
