"""Per-tick telemetry (streamed to JSONL only) and the end-of-run summary, in memory that does not grow with the run.

Nothing is kept per tick: the summary comes from exact counters and fixed-size histograms (`Histogram`), so an
hours-long run uses the same memory as a short one and the garbage collector has no tick records to walk.
The summary has exactly these keys: ticks, hz, period_ms {p1, p50, p99, max}, inference_ms {p50, p99},
missed_deadlines, bus_errors, safety_interventions, out_of_distribution {feature: observations}, seams {count,
jump_p95, jump_max} (policy units), jerk_rms (policy units/s³, third difference of the commanded goals), dropped
(stale actions), holding_share (ticks with no fresh action, from the first action on); plus frame_age_ms
{<camera feature>: {p50, p99, max}} when the robot has cameras.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping, Sequence

import numpy as np

from calibration.strict_files import decode, parse_json
from edge.errors import EdgeError

RECORD_KEYS = frozenset({"t", "period_ms", "inference_ms", "present", "goal"})  # what edge report plots


@dataclass
class TickRecord:
    tick: int
    t: float  # seconds since the loop started (monotonic clock)
    deadline: float  # when this tick was scheduled to start, same clock
    period_ms: float  # time since the previous tick started
    inference_ms: float | None  # latency of an inference that finished (async) or ran (sync) this tick
    queue_depth: int
    action: np.ndarray | None  # policy units, as the policy gave it (None: no action yet, the last goal is held)
    goal: np.ndarray | None  # policy units, as commanded after the safety layer
    present: np.ndarray  # policy units, as read this tick
    bus_errors: int  # cumulative
    safety_interventions: int  # cumulative
    dropped_actions: int = 0
    missed: bool = False
    out_of_distribution: int = 0  # cumulative: observations with a state value far outside the training statistics
    frame_age_ms: dict[str, float] | None = None  # per camera: how old the frame the policy got was
    seam_jump: float | None = None  # a chunk merged this tick changed its action by this much (policy units)
    safety_reaction: str | None = None  # set from the tick a safety reaction was taken on: its cause

    def to_json(self) -> str:
        """One JSONL line (arrays as lists)."""
        data = dict(self.__dict__)
        data["action"] = None if self.action is None else np.asarray(self.action).tolist()
        data["goal"] = None if self.goal is None else self.goal.tolist()
        data["present"] = self.present.tolist()
        return json.dumps(data)


class Histogram:
    """Streaming percentiles in fixed memory: logarithmic bins `lo * (1 + 2e)^k` over [lo, hi] plus exact count,
    min and max.

    Error bound: `percentile(q)` is within a relative `e` (default 0.5%) of an observed value whose rank is the
    nearest to q/100 * (n - 1), so it lies within [v_floor * (1 - e), v_ceil * (1 + e)] where v_floor, v_ceil are
    the two order statistics numpy's (linear) percentile interpolates between. Values below `lo` (1 us for
    milliseconds) share the first bin, so they are resolved only to within `lo * (1 + 2e)`; values above `hi` share
    the last. Estimates are clamped to the exact [min, max].
    """

    def __init__(self, lo: float = 1e-3, hi: float = 1e6, relative_error: float = 0.005) -> None:
        self.lo, self.error = lo, relative_error
        self._scale = 1.0 / math.log1p(2 * relative_error)
        self._counts = [0] * (int(math.log(hi / lo) * self._scale) + 1)
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Count one value (constant time, no allocation that outlives the call)."""
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        k = int(math.log(value / self.lo) * self._scale) if value > self.lo else 0
        self._counts[min(k, len(self._counts) - 1)] += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) within the stated bound; 0.0 when nothing was added."""
        if not self.count:
            return 0.0
        rank = int(q / 100 * (self.count - 1) + 0.5) + 1  # 1-based rank of the nearest order statistic
        seen = 0
        for k, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                value = self.lo * (1 + 2 * self.error) ** k * (1 + self.error)
                return min(max(value, self.min), self.max)
        return self.max


@dataclass
class Telemetry:
    """Counts ticks into the summary's statistics and streams each record to a JSONL file when `path` is set."""

    path: Path | None = None
    cameras: Sequence[str] = ()
    meta: Mapping[str, Any] | None = None  # written as the file's first line {"meta": ...}: what `edge report` labels

    def __post_init__(self) -> None:
        self.ticks = 0
        self.missed_deadlines = 0
        self.bus_errors = 0
        self.safety_interventions = 0
        self.period_ms = Histogram()
        self.inference_ms = Histogram()
        self.frame_age_ms = {name: Histogram() for name in self.cameras}
        self.seam_jumps = Histogram()
        self.dropped = self.holding = self.acting = 0
        self.jerk_sq, self.jerk_n = 0.0, 0
        self._goal_count = 0
        self._goals = np.zeros((0, 0))  # the last 4 commanded goals (a fixed ring once the dimension is known)
        self.out_of_distribution: Mapping[str, int] = {}  # per feature: the policy's live counts
        self._first_t = self._last_t = 0.0
        self._file: IO[str] | None = None
        self.write_error: OSError | None = None  # why the JSONL file stopped being written (disk full, ...)
        if self.path is not None:
            self._file = open(self.path, "w", encoding="utf-8")
            if self.meta is not None:
                self._file.write(json.dumps({"meta": dict(self.meta)}) + "\n")

    def add(self, record: TickRecord) -> None:
        """Fold one tick into the statistics (and the JSONL file); nothing of it is retained."""
        self.ticks += 1
        if self.ticks == 1:
            self._first_t = record.t
        else:
            self.period_ms.add(record.period_ms)
        self._last_t = record.t
        if record.inference_ms is not None:
            self.inference_ms.add(record.inference_ms)
        if record.frame_age_ms:
            for name, age in record.frame_age_ms.items():
                self.frame_age_ms[name].add(age)
        if record.seam_jump is not None:
            self.seam_jumps.add(record.seam_jump)
        self.dropped += record.dropped_actions
        self._add_goal(record)
        self.bus_errors = record.bus_errors
        self.safety_interventions = record.safety_interventions
        if self._file is not None:
            try:
                self._file.write(record.to_json() + "\n")
            except OSError as exc:  # the run goes on: telemetry is a record, not part of the control
                self._lost(exc)

    def _add_goal(self, record: TickRecord) -> None:
        """Holding share from the first action on, and jerk (third difference of goals over the period³)."""
        if record.goal is None:
            self.holding += self.acting > 0
            return
        if self._goals.shape[1] != len(record.goal):
            self._goals, self._goal_count = np.zeros((4, len(record.goal))), 0
        self.acting += 1
        self._goals[:3] = self._goals[1:]
        self._goals[3] = record.goal
        self._goal_count += 1
        if self._goal_count >= 4 and record.period_ms > 0:
            a, b, c, d = self._goals
            jerk = (d - 3 * c + 3 * b - a) / (record.period_ms / 1e3) ** 3
            self.jerk_sq += float(np.dot(jerk, jerk))
            self.jerk_n += len(jerk)

    def close(self) -> None:
        """Close the JSONL file (a failure to flush it is kept in `write_error`, like one during the run)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._lost(exc)
            self._file = None

    def _lost(self, exc: OSError) -> None:
        """Stop writing the JSONL file after a failed write; the first failure is kept for the end of the run."""
        self.write_error = self.write_error or exc
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass

    def summary(self) -> dict[str, Any]:
        """The end-of-run summary (exact keys in the module docstring)."""
        def pct(h: Histogram, q: float) -> float:
            return round(h.percentile(q), 4)

        duration = self._last_t - self._first_t
        period = self.period_ms
        summary: dict[str, Any] = {
            "ticks": self.ticks,
            "hz": round((self.ticks - 1) / duration, 3) if duration > 0 else 0.0,
            "period_ms": {"p1": pct(period, 1), "p50": pct(period, 50), "p99": pct(period, 99),
                          "max": round(period.max, 4) if period.count else 0.0},
            "inference_ms": {"p50": pct(self.inference_ms, 50), "p99": pct(self.inference_ms, 99)},
            "missed_deadlines": self.missed_deadlines,
            "bus_errors": self.bus_errors,
            "safety_interventions": self.safety_interventions,
            "out_of_distribution": dict(self.out_of_distribution),
            "seams": {"count": self.seam_jumps.count, "jump_p95": pct(self.seam_jumps, 95),
                      "jump_max": round(self.seam_jumps.max, 4) if self.seam_jumps.count else 0.0},
            "jerk_rms": round(math.sqrt(self.jerk_sq / self.jerk_n), 3) if self.jerk_n else 0.0,
            "dropped": self.dropped,
            "holding_share": round(self.holding / (self.holding + self.acting), 4) if self.acting else 0.0,
        }
        if self.frame_age_ms:
            summary["frame_age_ms"] = {name: {"p50": pct(h, 50), "p99": pct(h, 99),
                                              "max": round(h.max, 4) if h.count else 0.0}
                                       for name, h in self.frame_age_ms.items()}
        return summary


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
        ("seams count/jump p95/max", f"{summary['seams']['count']} / {summary['seams']['jump_p95']:.2f} / "
                                     f"{summary['seams']['jump_max']:.2f} policy units"),
        ("dropped / holding", f"{summary['dropped']} / {100 * summary['holding_share']:.1f}% of ticks"),
        ("out of distribution", ", ".join(f"{k} {v}" for k, v in summary["out_of_distribution"].items() if v) or "0"),
    ]
    for name, age in summary.get("frame_age_ms", {}).items():
        rows.append((f"frame age {name} p50/p99/max", f"{age['p50']:.1f} / {age['p99']:.1f} / {age['max']:.1f} ms"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


@dataclass
class TelemetryFile:
    """A JSONL telemetry file: the run's meta line (None in files from before it existed: no names, no rate), its
    tick records, and the line number of a cut-off last line that was skipped."""

    meta: dict[str, Any] | None
    records: list[dict[str, Any]]
    skipped_line: int | None = None


def read_telemetry(path: str | Path) -> TelemetryFile:
    """Read a JSONL telemetry file strictly (calibration.strict_files, per line). A last line with no newline that
    does not parse is what a crash or a full disk leaves: it is skipped and its number reported, not refused."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read telemetry {path}: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    meta, records, skipped = None, [], None
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = parse_json(decode(raw, where, EdgeError, "telemetry"), where, EdgeError, "telemetry")
        except EdgeError:
            if number == len(lines):  # the last line has no newline after it: cut off mid-write
                skipped = number
                break
            raise
        if not records and meta is None and isinstance(record, dict) and set(record) == {"meta"}:
            if not isinstance(record["meta"], dict):
                raise EdgeError(f"telemetry {where}: the meta line is not an object")
            meta = record["meta"]
            continue
        problem = _record_problem(record, len(records[0]["present"]) if records else None)
        if problem:
            raise EdgeError(f"telemetry {where} is not a tick record of edge run --telemetry: {problem}")
        records.append(record)
    return TelemetryFile(meta, records, skipped)


def load_telemetry(path: str | Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The run's meta line (None in older files) and its tick records (read_telemetry)."""
    found = read_telemetry(path)
    return found.meta, found.records


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The tick records of a telemetry file."""
    return read_telemetry(path).records


def _record_problem(record: Any, joints: int | None) -> str | None:
    """What makes `record` unplottable (missing keys, wrong types, a joint count that changed), or None."""
    def numbers(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      for x in v) and len(v) == (joints or len(v))
    if not isinstance(record, dict) or not RECORD_KEYS <= set(record):
        return f"needs {', '.join(sorted(RECORD_KEYS))}"
    for key in ("t", "period_ms") + (("inference_ms",) if record["inference_ms"] is not None else ()):
        if isinstance(record[key], bool) or not isinstance(record[key], (int, float)):
            return f"{key} is not a number"
    if not numbers(record["present"]) or not (record["goal"] is None or numbers(record["goal"])):
        return "present and goal must be lists of numbers, one per joint" + (f" ({joints})" if joints else "")
    return None
