"""Telemetry in bounded memory: the summary's percentiles come from a fixed-size histogram whose stated error bound
holds against numpy, nothing per tick is retained, and every record still reaches the JSONL file."""

from __future__ import annotations

import gc
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edge.errors import EdgeError
from edge.robot.telemetry import Histogram, Telemetry, TickRecord, load_records, read_telemetry

SUMMARY_KEYS = {"ticks", "hz", "period_ms", "inference_ms", "missed_deadlines", "bus_errors", "safety_interventions",
                "out_of_distribution", "seams", "jerk_rms", "dropped", "holding_share"}


def record(tick: int, period_ms: float = 10.0, ages: dict[str, float] | None = None) -> TickRecord:
    return TickRecord(tick=tick, t=tick * 0.01, deadline=tick * 0.01, period_ms=period_ms, inference_ms=0.5,
                      queue_depth=3, action=np.zeros(6, np.float32), goal=np.zeros(6, np.float32),
                      present=np.ones(6, np.float32), bus_errors=0, safety_interventions=tick // 10,
                      frame_age_ms=ages)


@pytest.mark.parametrize("sample", [
    lambda rng: rng.lognormal(2.3, 0.4, 5000),  # periods around 10 ms
    lambda rng: rng.uniform(0.01, 80.0, 3001),
    lambda rng: np.concatenate([rng.normal(10, 0.05, 4000), rng.normal(45, 1, 40)]),  # rare long ticks
    lambda rng: np.full(17, 33.3),
    lambda rng: rng.exponential(0.002, 999),  # below the histogram's 1 us floor, partly
])
def test_histogram_percentiles_hold_their_stated_bound(sample) -> None:  # noqa: ANN001
    values = sample(np.random.default_rng(0))
    hist = Histogram()
    for v in values:
        hist.add(float(v))
    ordered = np.sort(values)
    e, floor = hist.error, hist.lo * (1 + 2 * hist.error)  # below `lo`, values are resolved to within its bin
    for q in (0, 1, 5, 50, 90, 99, 99.9, 100):
        position = q / 100 * (len(values) - 1)
        lo, hi = ordered[int(np.floor(position))], ordered[int(np.ceil(position))]
        estimate = hist.percentile(q)
        assert min(lo * (1 - e), lo - floor) <= estimate <= max(hi * (1 + e), hi + floor), (q, estimate, lo, hi)
        assert lo <= np.percentile(values, q) <= hi  # the interval numpy's own (linear) percentile lies in
    assert hist.count == len(values) and hist.max == ordered[-1] and hist.min == ordered[0]
    assert Histogram().percentile(50) == 0.0


def test_nothing_per_tick_is_retained(tmp_path: Path) -> None:
    telemetry = Telemetry(cameras=["observation.images.top"])
    ages = {"observation.images.top": 12.0}
    for tick in range(2000):  # warm-up: every histogram bin these values touch exists from the start anyway
        telemetry.add(record(tick, ages=ages))
    gc.collect()
    tracked = len(gc.get_objects())
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for tick in range(2000, 22000):
        telemetry.add(record(tick, period_ms=10.0 + (tick % 7) * 0.1, ages=ages))
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    gc.collect()
    assert grown < 4096, f"{grown} bytes kept over 20000 ticks"
    assert len(gc.get_objects()) - tracked < 50
    summary = telemetry.summary()
    assert summary["ticks"] == 22000 and summary["safety_interventions"] == 2199
    assert set(summary) == SUMMARY_KEYS | {"frame_age_ms"}
    assert summary["frame_age_ms"]["observation.images.top"] == {"p50": 12.0, "p99": 12.0, "max": 12.0}
    assert summary["period_ms"]["max"] == 10.6 and summary["hz"] == pytest.approx(100.0)


def test_every_record_is_streamed_and_the_summary_keys_are_unchanged(tmp_path: Path) -> None:
    telemetry = Telemetry(tmp_path / "run.jsonl")
    for tick in range(5):
        telemetry.add(record(tick))
    telemetry.close()
    lines = load_records(tmp_path / "run.jsonl")
    assert [r["tick"] for r in lines] == [0, 1, 2, 3, 4] and lines[0]["present"] == [1.0] * 6
    assert json.loads((tmp_path / "run.jsonl").read_text().splitlines()[-1])["action"] == [0.0] * 6
    assert set(telemetry.summary()) == SUMMARY_KEYS  # no cameras: no frame_age_ms


def test_a_cut_last_line_is_skipped_and_named_a_bad_middle_line_refused_by_number(tmp_path: Path) -> None:
    telemetry = Telemetry(tmp_path / "run.jsonl")
    for tick in range(4):
        telemetry.add(record(tick))
    telemetry.close()
    text = (tmp_path / "run.jsonl").read_bytes()
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(text[:-25])  # what a crash mid-write leaves: the last line without its end or newline
    loaded = read_telemetry(cut)
    assert [r["tick"] for r in loaded.records] == [0, 1, 2] and loaded.skipped_line == 4
    lines = text.split(b"\n")
    lines[1] = lines[1][:-5]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(EdgeError, match=r"bad.jsonl line 2 is not valid JSON"):
        read_telemetry(bad)
    lines[1] = b'{"t": 1, "period_ms": 1, "inference_ms": null, "present": [1, 2], "goal": null}'
    bad.write_bytes(b"\n".join(lines))
    with pytest.raises(EdgeError, match=r"line 2 is not a tick record.*one per joint"):
        read_telemetry(bad)
