"""LeRobot checkpoint → policy package, written atomically (edge.runtime.files.staged_directory).

The export refuses what the runtime would refuse: the checkpoint's statistics are checked as the loader
checks them (export/checkpoint.py), the chunking before any graph is exported, and the finished package
is loaded with the runtime's own loader and runner before it is renamed into place.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from edge import load_policy
from edge.errors import EdgeError, PackageError
from edge.runtime.backends.trt_compat import check_file, support_table
from edge.runtime.files import staged_directory
from edge.runtime.package import (
    CPU_PRECISIONS,
    MAX_OPSET,
    WEIGHT_STORAGE,
    ActionOutput,
    DatasetInfo,
    GraphSpec,
    Manifest,
    ObservationInput,
    Source,
    Validation,
    check_chunking,
    load_package,
    sha256_file,
    write_manifest,
)
from edge.runtime.package.batches import load_batches, write_batches
from export.checkpoint import Checkpoint, load_checkpoint
from export.cpu_precision import INT8_FAMILIES, quantize_package
from export.dataset_info import check_dataset_info, find_dataset_info, read_dataset_info
from export.errors import CheckpointError, ExportError
from export.families import known_family
from export.families.base import ExportOptions, GraphExport
from export.graph_rewrites import rewrite_file
from export.onnx_export import compare_with_onnxruntime, export_graph, torch_outputs
from export.serve_batches import check_sizes, export_batches
from export.weight_storage import round_to_float16, store_float16

VALIDATION_FILE = "validation.npz"
KINDS = {"STATE": "state", "ENV": "env_state", "VISUAL": "image"}

Progress = Callable[[str], None]


def observation_inputs(ckpt: Checkpoint) -> list[ObservationInput]:
    """Manifest inputs as the robot delivers them: images uint8 HWC, states float32."""
    inputs = []
    for f in ckpt.input_features:
        if f.type not in KINDS:
            raise CheckpointError(f"input feature {f.name!r} has unsupported type {f.type!r}")
        image = f.type == "VISUAL"
        shape = [f.shape[1], f.shape[2], f.shape[0]] if image else list(f.shape)
        inputs.append(ObservationInput(f.name, KINDS[f.type], shape, "uint8" if image else "float32",
                                       ckpt.normalization[f.name]))
    return inputs


def action_output(ckpt: Checkpoint) -> ActionOutput:
    action = next((f for f in ckpt.output_features if f.name == "action"), None)
    if action is None:
        raise CheckpointError("config.json output_features has no 'action'")
    return ActionOutput("action", action.shape[0], ckpt.normalization["action"])


def _dataset_section(ckpt: Checkpoint, dataset_info: str | Path | None, progress: Progress) -> DatasetInfo | None:
    """The manifest's dataset section from the named or found meta/info.json, checked against the checkpoint."""
    path = Path(dataset_info) if dataset_info is not None else find_dataset_info(ckpt.path)
    if path is None:
        progress("no dataset meta/info.json named (--dataset-info) or found through train_config.json: the package "
                 "records no joint names, so `edge run` cannot check the robot's joint order against the training data")
        return None
    info = read_dataset_info(path)
    state = next((f for f in ckpt.input_features if f.name == "observation.state"), None)
    check_dataset_info(info, None if state is None else int(state.shape[0]), action_output(ckpt).dim, path)
    progress(f"dataset {path}: fps {info.fps}, state names {info.state_names}, action names {info.action_names}")
    return info


def export_package(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None,
                   force: bool = False, progress: Progress = print, tensorrt_check: bool = True,
                   dataset_info: str | Path | None = None) -> Manifest:
    """Export a LeRobot checkpoint to a policy package at `out`; nothing is written if any step fails.

    `tensorrt_check`: refuse graphs that TensorRT 10.3's ONNX parser would not take (edge/runtime/backends/trt_compat.py).
    `dataset_info`: the training dataset's meta/info.json (joint names, fps); None looks for it through the
    checkpoint's train_config.json (export/dataset_info.py).
    """
    options = options or ExportOptions()
    if options.weights not in WEIGHT_STORAGE:
        raise ExportError(f"weights {options.weights!r}: expected one of {WEIGHT_STORAGE}")
    if options.cpu_precision not in CPU_PRECISIONS:
        raise ExportError(f"cpu_precision {options.cpu_precision!r}: expected one of {CPU_PRECISIONS}")
    check_sizes(options.serve_batches, options.cpu_precision)
    if not 1 <= options.opset <= MAX_OPSET:
        raise ExportError(f"opset {options.opset} is outside 1..{MAX_OPSET} (TensorRT 10.3 on JetPack 6 parses up to "
                          f"{MAX_OPSET})")
    out = Path(out)
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; pass --force to overwrite it")
    t0 = time.monotonic()
    progress(f"reading checkpoint {checkpoint}")
    ckpt = load_checkpoint(checkpoint)
    dataset = _dataset_section(ckpt, dataset_info, progress)
    if options.weights == "float16":
        progress("rounding the weights to float16 (they are stored as float16, computed in float32)")
        ckpt.state_dict = round_to_float16(ckpt.state_dict)
    if options.cpu_precision == "int8" and ckpt.policy_type not in INT8_FAMILIES:
        raise ExportError(f"--cpu-precision int8 is not offered for {ckpt.policy_type} policies (only for "
                          f"{list(INT8_FAMILIES)}, where its fidelity was shown: benchmarks/RESULTS.md, section int8)")
    progress(f"building {ckpt.policy_type} model ({len(ckpt.state_dict)} tensors, strict)")
    family = known_family(ckpt.policy_type).exporter().build(ckpt, options)
    try:
        check_chunking(family.policy, family.chunking)
    except PackageError as exc:
        raise CheckpointError(f"{ckpt.path / 'config.json'} gives a package the runtime would refuse: {exc}") from None

    def export_file(graph: GraphExport, path: Path, expected: list[dict[str, np.ndarray]], label: str
                    ) -> tuple[GraphSpec, float]:
        """One graph to ONNX at `path`: traced, rewritten, weights stored, TensorRT-checked, compared with PyTorch."""
        # folding BatchNorm into a convolution multiplies weights: the products are not float16-exact
        ins, outs = export_graph(graph, path, options.opset, fold_batch_norm=options.weights == "float32")
        if options.graph_rewrites and (count := rewrite_file(path)):
            progress(f"{label}: {count} nodes rewritten for ONNX Runtime's CPU kernels (export/graph_rewrites.py)")
        if options.weights == "float16":
            report = store_float16(path)
            progress(f"{label}: {report.converted} initializers stored as float16, "
                     f"{report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB")
        problems = check_file(path, graph.name) if tensorrt_check else []
        if problems:
            raise ExportError(f"TensorRT {support_table()['tensorrt']} would not parse graph {graph.name!r}: "
                              + "; ".join(map(str, problems)) + " (--no-tensorrt-check exports it for ONNX "
                              "Runtime only)")
        progress(f"{label}: checking ONNX Runtime vs PyTorch on {len(graph.samples)} samples")
        return (GraphSpec(path.name, sha256_file(path), ins, outs, options.opset),
                compare_with_onnxruntime(graph, path, expected))

    with staged_directory(out, replace=force) as tmp:  # publishes `out` only after the runtime loaded it
        graphs, arrays, errors, expected = {}, {}, {}, {}
        for i, graph in enumerate(family.graphs, 1):
            label = f"[{i}/{len(family.graphs)}] {graph.name!r}"
            progress(f"{label}: exporting (opset {options.opset})")
            expected[graph.name] = [torch_outputs(graph, s) for s in graph.samples]
            graphs[graph.name], errors[graph.name] = export_file(graph, tmp / f"{graph.name}.onnx",
                                                                 expected[graph.name], label)
            for s, (sample, ref) in enumerate(zip(graph.samples, expected[graph.name])):
                arrays.update({f"{graph.name}/{s}/in/{k}": v for k, v in sample.items()})
                arrays.update({f"{graph.name}/{s}/out/{k}": v for k, v in ref.items()})
        batches = (export_batches(family.graphs, expected, graphs, tmp, options.serve_batches, export_file, progress)
                   if options.serve_batches else None)
        np.savez(tmp / VALIDATION_FILE, **arrays)
        manifest = Manifest(
            policy_type=ckpt.policy_type,
            source=Source(os.path.relpath(ckpt.path.resolve(), out.resolve()), ckpt.sha256, ckpt.config),
            inputs=observation_inputs(ckpt),
            action=action_output(ckpt),
            chunking=family.chunking,
            graphs=graphs,
            validation=Validation(VALIDATION_FILE, sha256_file(tmp / VALIDATION_FILE), len(family.graphs[0].samples),
                                  max(g.tolerance for g in family.graphs), errors),
            policy=family.policy,
            weights=options.weights,
            # --fps (the policy's own rate) wins over the dataset's
            dataset=dataset if options.fps is None else replace(dataset or DatasetInfo(), fps=options.fps),
        )
        try:
            write_manifest(tmp, manifest)
        except PackageError as exc:
            raise ExportError(f"the exported package would not load: {exc}") from None
        if options.cpu_precision == "int8":
            progress("INT8 matrix products (export/cpu_precision.py), checked against PyTorch's validation outputs")
            errors = quantize_package(tmp, progress)
        progress("loading the package with the runtime's loader and runner before committing it")
        try:
            load_policy(tmp, backend="onnxruntime").close()
            if batches is not None:
                write_batches(tmp, batches)
                load_batches(load_package(tmp))
        except EdgeError as exc:
            raise ExportError(f"the exported package would not load: {exc}") from None
    worst = max(errors.values())
    progress(f"wrote {out} in {time.monotonic() - t0:.1f} s (max |ONNX Runtime - PyTorch| = {worst:.2e})")
    return manifest
