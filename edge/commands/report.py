"""`edge report run.jsonl [--out DIR]`: PNG plots of a run's telemetry (needs the `plot` extra: matplotlib).

Three figures: the period histogram, inference latency over time, and goal vs present per joint with every seam
(a merge that changed its tick's action, `seam_jump` in the telemetry) marked by a dotted line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge.errors import CLIError
from edge.robot.telemetry import load_records


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="plot a run's telemetry (JSONL from edge run --telemetry)")
    p.add_argument("telemetry", type=Path, help="JSONL telemetry file")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: beside the file)")
    return p


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CLIError("edge report needs matplotlib: pip install 'edge-policy-runtime[plot]'") from None
    try:
        records = load_records(args.telemetry)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read telemetry {args.telemetry}: {exc}") from None
    if len(records) < 2:
        raise CLIError(f"{args.telemetry} has {len(records)} tick record(s); need at least 2")
    out = args.out or args.telemetry.parent
    out.mkdir(parents=True, exist_ok=True)
    stem = args.telemetry.stem
    t = np.array([r["t"] for r in records])
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist([r["period_ms"] for r in records[1:]], bins=60)
    ax.set(xlabel="period (ms)", ylabel="ticks", title="Control period")
    written.append(_save(fig, out / f"{stem}_period.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    inf = [(r["t"], r["inference_ms"]) for r in records if r["inference_ms"] is not None]
    if inf:
        ax.plot(*zip(*inf), ".", ms=3)
    ax.set(xlabel="time (s)", ylabel="inference (ms)", title="Inference latency")
    written.append(_save(fig, out / f"{stem}_inference.png"))

    present = np.array([r["present"] for r in records])
    goal = np.array([r["goal"] if r["goal"] is not None else [np.nan] * present.shape[1] for r in records])
    seams = [r["t"] for r in records if r.get("seam_jump") is not None]  # older telemetry has no seam_jump
    joints = present.shape[1]
    fig, axes = plt.subplots(joints, 1, figsize=(8, 1.8 * joints), sharex=True, squeeze=False)
    for j, ax in enumerate(axes[:, 0]):
        ax.plot(t, goal[:, j], label="goal")
        ax.plot(t, present[:, j], label="present")
        for k, when in enumerate(seams):
            ax.axvline(when, color="tab:red", linestyle=":", linewidth=0.8, label="seam" if k == 0 else None)
        ax.set_ylabel(f"joint {j}")
    axes[0, 0].legend(loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    written.append(_save(fig, out / f"{stem}_joints.png"))
    for path in written:
        print(path)
    print(f"{len(seams)} seam(s) marked")
    return 0


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path
