"""Per-tick telemetry (JSONL) and the end-of-run summary.

The summary has exactly these keys: ticks, hz, period_ms {p1, p50, p99, max}, inference_ms {p50, p99},
missed_deadlines, bus_errors, safety_interventions, out_of_distribution {feature: observations}.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Mapping

import numpy as np


@dataclass
class TickRecord:
    tick: int
    t: float  # seconds since the loop started (monotonic clock)
    deadline: float  # when this tick was scheduled to start, same clock
    period_ms: float  # time since the previous tick started
    inference_ms: float | None  # latency of an inference that finished (async) or ran (sync) this tick
    queue_depth: int
    goal: list[float] | None  # policy units, as commanded after the safety layer
    present: list[float]  # policy units, as read this tick
    bus_errors: int  # cumulative
    safety_interventions: int  # cumulative
    dropped_actions: int = 0
    missed: bool = False
    out_of_distribution: int = 0  # cumulative: observations with a state value far outside the training statistics


@dataclass
class Telemetry:
    """Collects tick records, optionally streaming them to a JSONL file."""

    path: Path | None = None
    records: list[TickRecord] = field(default_factory=list)
    missed_deadlines: int = 0
    out_of_distribution: Mapping[str, int] = field(default_factory=dict)  # per feature: the policy's live counts
    _file: IO[str] | None = None

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")

    def add(self, record: TickRecord) -> None:
        self.records.append(record)
        if self._file is not None:
            self._file.write(json.dumps(asdict(record)) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def summary(self) -> dict[str, Any]:
        return {**summarize(self.records, self.missed_deadlines), "out_of_distribution": dict(self.out_of_distribution)}


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 4) if values else 0.0


def summarize(records: list[TickRecord], missed_deadlines: int) -> dict[str, Any]:
    periods = [r.period_ms for r in records[1:]]
    inference = [r.inference_ms for r in records if r.inference_ms is not None]
    duration = records[-1].t - records[0].t if len(records) > 1 else 0.0
    last = records[-1] if records else None
    return {
        "ticks": len(records),
        "hz": round((len(records) - 1) / duration, 3) if duration > 0 else 0.0,
        "period_ms": {"p1": _pct(periods, 1), "p50": _pct(periods, 50), "p99": _pct(periods, 99),
                      "max": round(max(periods), 4) if periods else 0.0},
        "inference_ms": {"p50": _pct(inference, 50), "p99": _pct(inference, 99)},
        "missed_deadlines": missed_deadlines,
        "bus_errors": last.bus_errors if last else 0,
        "safety_interventions": last.safety_interventions if last else 0,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a small aligned table for the terminal."""
    p, i = summary["period_ms"], summary["inference_ms"]
    rows = [
        ("ticks", f"{summary['ticks']}"),
        ("rate", f"{summary['hz']:.2f} Hz"),
        ("period p1/p50/p99/max", f"{p['p1']:.3f} / {p['p50']:.3f} / {p['p99']:.3f} / {p['max']:.3f} ms"),
        ("inference p50/p99", f"{i['p50']:.2f} / {i['p99']:.2f} ms"),
        ("missed deadlines", f"{summary['missed_deadlines']}"),
        ("bus errors", f"{summary['bus_errors']}"),
        ("safety interventions", f"{summary['safety_interventions']}"),
        ("out of distribution", ", ".join(f"{k} {v}" for k, v in summary["out_of_distribution"].items() if v) or "0"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def load_records(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
