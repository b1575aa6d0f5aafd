"""ONNX Runtime's optimised-model cache: a large graph re-saved with its weights beside it, in the user's cache.

A package graph stores its weights inside the ONNX protobuf. ONNX Runtime parses all of it, copies the weights out
and keeps the freed parse buffers in the process heap: a 1 GB U-Net took 2.8 s to load and 190 MB more resident
memory than the same graph with external weights, which loads in 0.8 s (docs/performance.md). The cache holds that
form: ONNX Runtime's own basic-level optimised model (hardware-independent) with its initializers in a separate
file, written once by ONNX Runtime itself in a child process (no `onnx` package needed on the robot, and the
one-off parse of the embedded weights does not stay in the robot process's memory). Layout:

    <cache>/onnxruntime/ort<version>_<graph sha256[:16]>/graph.onnx   the model
                                                        /graph.onnx.data   its weights
                                                        /key.json          what it was made from, and the
                                                                           sha256 of the other two

<cache> is $EDGE_CACHE_DIR, else $XDG_CACHE_HOME/edge, else ~/.cache/edge: bundled packages live in a read-only
site-packages and nothing is written into a package. The key is the graph's sha256 (which load_package verified
against the file) and the ONNX Runtime version, so an entry can never belong to another graph or another runtime;
an entry whose key or file hashes do not match (a damaged or edited cache file) is rebuilt, and one that fails to
load is replaced, with a warning. Hashing the entry costs a read of it per load, which is what makes the graph
ONNX Runtime runs the graph the package's sha256 vouches for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from calibration.strict_files import read_json
from edge.runtime.files import OutputTaken, staged_directory
from edge.runtime.package import sha256_file

MIN_BYTES = 64 << 20  # smaller graphs load fast enough from the package itself
MODEL, DATA, KEY = "graph.onnx", "graph.onnx.data", "key.json"


def cache_root() -> Path:
    """$EDGE_CACHE_DIR, else $XDG_CACHE_HOME/edge, else ~/.cache/edge."""
    if os.environ.get("EDGE_CACHE_DIR"):
        return Path(os.environ["EDGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edge"


def entry_dir(ort_version: str, graph_sha256: str) -> Path:
    return cache_root() / "onnxruntime" / f"ort{ort_version}_{graph_sha256[:16]}"


def _key(ort_version: str, graph_sha256: str) -> dict[str, Any]:
    return {"onnxruntime": ort_version, "onnx_sha256": graph_sha256, "optimization": "basic",
            "initializers": "external"}


class _Unreadable(Exception):
    """key.json cannot be read: the entry is rebuilt."""


def _valid(entry: Path, key: dict[str, Any]) -> bool:
    try:
        recorded = read_json(entry / KEY, _Unreadable, "ONNX Runtime cache key")
    except _Unreadable:
        return False
    digests = recorded.pop("sha256", None) if isinstance(recorded, dict) else None
    return recorded == key and isinstance(digests, dict) and set(digests) == {MODEL, DATA} and all(
        (entry / name).is_file() and sha256_file(entry / name) == digest for name, digest in digests.items())


WRITER = """
import sys
import onnxruntime as ort
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
opts.optimized_model_filepath = sys.argv[2]
opts.add_session_config_entry("session.optimized_model_external_initializers_file_name", sys.argv[3])
# small constants stay inline: ONNX Runtime cannot shape-infer from external ones (e.g. Split sizes)
opts.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", str(1 << 16))
opts.log_severity_level = 3
ort.InferenceSession(sys.argv[1], opts, providers=["CPUExecutionProvider"])
"""


def _write(source: Path, entry: Path, key: dict[str, Any]) -> None:
    """Have ONNX Runtime save its basic-level optimised model with external weights, in a child process (so the
    parse of the embedded weights never adds to this process's memory); publish the entry atomically."""
    with staged_directory(entry) as tmp:
        done = subprocess.run([sys.executable, "-c", WRITER, str(source), str(tmp / MODEL), DATA],
                              capture_output=True, text=True)
        if done.returncode != 0 or not (tmp / DATA).is_file():
            raise OSError(f"ONNX Runtime could not write it: {done.stderr.strip().splitlines()[-1:]}")
        digests = {name: sha256_file(tmp / name) for name in (MODEL, DATA)}
        (tmp / KEY).write_text(json.dumps({**key, "sha256": digests}, indent=2))


def cached_model(ort: Any, source: Path, graph_sha256: str) -> Path | None:
    """The cached form of the graph at `source` (made now if missing or invalid); None when the graph is small
    or the cache cannot be written (then the package's own file is loaded)."""
    if source.stat().st_size < MIN_BYTES:
        return None
    key = _key(ort.__version__, graph_sha256)
    entry = entry_dir(ort.__version__, graph_sha256)
    if _valid(entry, key):
        return entry / MODEL
    try:
        _write(source, entry, key)
    except (OSError, OutputTaken) as exc:  # OutputTaken: another process is writing this entry now
        warnings.warn(f"ONNX Runtime model cache entry {entry} could not be written ({exc}); loading {source} directly",
                      RuntimeWarning, stacklevel=3)
        return None
    return entry / MODEL


def discard(model: Path) -> None:
    """Remove a cache entry that ONNX Runtime failed to load (it is rebuilt on the next load)."""
    warnings.warn(f"ONNX Runtime model cache entry {model.parent} could not be loaded; removing it and loading the "
                  "package's graph", RuntimeWarning, stacklevel=3)
    shutil.rmtree(model.parent, ignore_errors=True)
