"""`edge report run.jsonl [--out DIR]`: PNG plots of a run's telemetry (needs the `plot` extra: matplotlib).

Three figures, each titled with the run (policy, rate): the control period's histogram (integer tick counts, the
target period marked), inference latency over time against the target period, and per joint the commanded action,
the goal sent after the safety layer and the position read, named and in the joint's unit. Vertical markers show
where bus faults, a safety reaction and chunk seams (a merge that changed its tick's action: `seam_jump` in the telemetry) happened; the
joints' title counts the safety layer's interventions (goals clamped or step-capped).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import CLIError
from edge.robot.telemetry import read_telemetry

# marker kind -> (colour, legend label, what in a record says it happened there)
MARKERS = {
    "fault": ("tab:red", "bus fault", lambda prev, r: prev is not None and r["bus_errors"] > prev["bus_errors"]),
    "reaction": ("tab:orange", "safety reaction", lambda prev, r: bool(r.get("safety_reaction"))
                 and not (prev or {}).get("safety_reaction")),
    "seam": ("tab:purple", "chunk seam", lambda prev, r: r.get("seam_jump") is not None),  # older files: none
}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="plot a run's telemetry (JSONL from edge run --telemetry)")
    p.add_argument("telemetry", type=Path, help="JSONL telemetry file")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: beside the file)")
    return p


def events(records: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The times (s) of each marker kind (the first record has no previous one)."""
    return {kind: [r["t"] for prev, r in zip([None, *records], records) if happened(prev, r)]
            for kind, (_, _, happened) in MARKERS.items()}


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise CLIError("edge report needs matplotlib: pip install 'edge-policy-runtime[plot]'") from None
    loaded = read_telemetry(args.telemetry)
    meta, records = loaded.meta, loaded.records
    if loaded.skipped_line is not None:
        print(f"{args.telemetry}: skipped line {loaded.skipped_line}, cut off before its end (the run did not "
              "finish writing it)")
    if len(records) < 2:
        raise CLIError(f"{args.telemetry} has {len(records)} tick record(s); need at least 2 (run longer)")
    out = args.out or args.telemetry.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = args.telemetry.stem
    t = np.array([r["t"] for r in records])
    periods = np.array([r["period_ms"] for r in records[1:]])
    present = np.array([r["present"] for r in records], dtype=float)
    joints = present.shape[1]
    if meta is None:  # a file from before the meta line: no names, the rate from the ticks themselves
        meta = {"hz": round(1000.0 / float(np.median(periods)), 1), "joints": [f"joint {j}" for j in range(joints)],
                "units": ["policy units"] * joints, "policy": "(no meta line: an older edge run)"}
    target_ms = 1000.0 / float(meta["hz"])
    title = (f"{stem}: {meta.get('policy_type', 'a')} policy {Path(str(meta['policy'])).name}, {meta['hz']:g} Hz"
             + (f", {meta['mode']}" if meta.get("mode") else ""))
    marks = events(records)
    written = []

    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.hist(periods, bins=60, color="tab:blue")
    ax.axvline(target_ms, color="black", ls="--", label=f"target period {target_ms:.1f} ms")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    missed = sum(1 for r in records if r.get("missed"))
    ax.set(xlabel="time between tick starts (ms)", ylabel="ticks (count)",
           title=f"Control period: {len(periods)} periods, {missed} missed deadline(s)")
    ax.legend(loc="upper right")
    fig.suptitle(title)
    written.append(_save(fig, out / f"{stem}_period.png"))

    fig, ax = plt.subplots(figsize=(8, 4.2))
    inf = np.array([(r["t"], r["inference_ms"]) for r in records if r["inference_ms"] is not None])
    if len(inf):
        ax.plot(inf[:, 0], inf[:, 1], ".", ms=4, label="inference (policy call)")
    ax.axhline(target_ms, color="black", ls="--", label=f"target period {target_ms:.1f} ms")
    _mark(ax, marks)
    ax.set(xlabel="time since start (s)", ylabel="inference latency (ms)", ylim=(0, None),
           title="Inference latency (above the target period: the tick runs late unless --async)")
    ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    written.append(_save(fig, out / f"{stem}_inference.png"))

    goal = _column(records, "goal", joints)
    action = _column(records, "action", joints)
    fig, axes = plt.subplots(joints, 1, figsize=(9, 1.9 * joints + 1), sharex=True, squeeze=False)
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(t, action[:, j], color="tab:green", lw=1, label="commanded (policy action)")
        ax.plot(t, goal[:, j], color="tab:blue", lw=1.5, label="goal sent (after safety)")
        ax.plot(t, present[:, j], color="black", lw=1, ls=":", label="present (read)")
        _mark(ax, marks)
        ax.set_ylabel(f"{meta['joints'][j]}\n({meta['units'][j]})", fontsize="small")
    axes[0, 0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", ncol=4, frameon=False)
    axes[-1, 0].set_xlabel("time since start (s)")
    fig.suptitle(f"{title}\njoints in the policy's units; {records[-1]['safety_interventions']} safety "
                 "intervention(s) (goals clamped or step-capped)")
    written.append(_save(fig, out / f"{stem}_joints.png"))
    for path in written:
        print(path)
    print(f"{len(marks['seam'])} seam(s) marked")
    return 0


def _column(records: list[dict[str, Any]], key: str, joints: int) -> np.ndarray:
    """One vector field of every record, NaN where the record has none (no action yet)."""
    return np.array([r[key] if r.get(key) is not None else [np.nan] * joints for r in records], dtype=float)


def _mark(ax, marks: dict[str, list[float]]) -> None:  # noqa: ANN001
    """Vertical lines where faults, a safety reaction and seams happened (one legend entry per kind)."""
    for kind, times in marks.items():
        colour, label, _ = MARKERS[kind]
        for i, when in enumerate(times):
            ax.axvline(when, color=colour, lw=0.8, alpha=0.6, label=f"{label} ({len(times)})" if i == 0 else None)


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
