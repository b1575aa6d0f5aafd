"""INT8 weights for CPUs with int8 dot products (x86 AVX-512 VNNI / AVX-VNNI, ARM SDOT): a package option.

`quantize_graph` rewrites every 1-D convolution and every Linear layer traced as Gemm as a MatMul
(export/graph_rewrites.py) and every MatMul with a constant float32 weight as ONNX Runtime's
MatMulNBits: weights in 8 bits, symmetric, one scale per
block of 32 along the reduction axis, activations quantized to int8 per block at run time (accuracy_level 4), so
the products run on the int8 dot-product instructions. Weights stream in a quarter of the bytes, which is what
bounds a batch-1 U-Net step (docs/performance.md). Convolutions over images, normalisation and attention softmax
stay float32. The graphs need ONNX Runtime (MatMulNBits is its contrib operator): TensorRT does not run them.

`quantize_package` applies it to an exported package in place and measures each graph against the export-time
PyTorch outputs stored in validation.npz (refused beyond INT8_SANITY: broken, not merely rounded); the manifest
records `cpu_precision: "int8"`, the new hashes and errors, and a validation tolerance of twice the worst error, so
`edge check` still catches a damaged graph. `edge-export --cpu-precision int8` runs it before the package is
written; `python -m export.cpu_precision <package> --out <dir>` makes an INT8 copy of an existing package.

It ships only for the families whose behaviour held on the simulated task and on LeRobot's fixtures
(benchmarks/eval_int8.py, benchmarks/RESULTS.md section int8): INT8_FAMILIES.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.exit_status import run_command, signals_interrupt
from edge.runtime.files import staged_directory
from edge.runtime.package import load_package, sha256_file, write_manifest
from export.errors import ExportError
from export.graph_rewrites import conv1d_as_matmul, gemm_as_matmul

INT8_FAMILIES = ("diffusion", "vqbet")  # passed the gate and run faster; ACT passed but gains nothing (RESULTS.md, int8)
BLOCK = 32
BITS = 8
ACCURACY_LEVEL = 4  # int8 activations: the VNNI / SDOT kernels
INT8_SANITY = 0.1  # export refuses an INT8 graph off PyTorch by more than this x max(1, |output|): broken, not noisy


def unfold_float16_storage(model: onnx.ModelProto) -> int:
    """Weights stored as float16 behind Cast nodes (edge-export --weights float16) back to float32 initializers, in
    place (exact): the quantizer reads weights that are initializers. Returns how many were unfolded."""
    graph = model.graph
    halves = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == "Cast" and n.input[0] in halves
             and helper.get_attribute_value(n.attribute[0]) == TensorProto.FLOAT]
    for node in casts:
        value = numpy_helper.to_array(halves[node.input[0]]).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name in halves and i.name not in used]:
        graph.initializer.remove(init)
    return len(casts)


def quantize_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """The model with its 1-D convolutions and constant-weight MatMuls in INT8; returns it and the MatMuls quantized."""
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    unfold_float16_storage(model)
    conv1d_as_matmul(model)
    gemm_as_matmul(model)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.WARNING)  # the quantizer logs every node at INFO
    try:
        quantizer = MatMulNBitsQuantizer(model, algo_config=DefaultWeightOnlyQuantConfig(
            block_size=BLOCK, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, bits=BITS))
        quantizer.process()
    finally:
        logging.getLogger().setLevel(quiet)
    quantized = quantizer.model.model
    return quantized, sum(n.op_type == "MatMulNBits" for n in quantized.graph.node)


def quantize_graph(path: Path) -> int:
    """Rewrite the ONNX file at `path` in INT8 (checked); returns how many MatMuls became MatMulNBits."""
    model, count = quantize_model(onnx.load(str(path)))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return count


def quantize_package(path: str | Path, progress: Callable[[str], None] = print,
                     families: tuple[str, ...] = INT8_FAMILIES) -> dict[str, float]:
    """Quantize every graph of the package at `path` in place and update its manifest; returns each graph's worst
    |INT8 - PyTorch| on the validation samples. ExportError (nothing usable left) when a graph is off by more than
    INT8_SANITY x max(1, |output|), or for a family not in `families` (the evidence script gathers it for every
    family) or an INT8 package."""
    import onnxruntime as ort

    package = load_package(path)
    manifest = package.manifest
    if manifest.policy_type not in families:
        raise ExportError(f"INT8 is not offered for {manifest.policy_type} policies (only for {list(INT8_FAMILIES)}, "
                         "where its fidelity was shown: benchmarks/RESULTS.md, section int8)")
    if manifest.cpu_precision != "fp32":
        raise ExportError(f"{package.path} is already a {manifest.cpu_precision} package")
    stored = package.validation_samples()
    errors = {}
    for name, spec in manifest.graphs.items():
        count = quantize_graph(package.graph_path(name))
        session = ort.InferenceSession(str(package.graph_path(name)), providers=["CPUExecutionProvider"])
        worst = 0.0
        for s, feeds in enumerate(package.graph_samples(name)):
            for out, got in zip([o.name for o in spec.outputs], session.run([o.name for o in spec.outputs], feeds)):
                ref = stored[f"{name}/{s}/out/{out}"]
                err = float(np.max(np.abs(got - ref))) if ref.size else 0.0
                if not err <= INT8_SANITY * max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0):
                    raise ExportError(f"graph {name!r}: INT8 output {out!r} of sample {s} is off PyTorch's by {err:.3g}")
                worst = max(worst, err)
        spec.sha256, errors[name] = sha256_file(package.graph_path(name)), worst
        progress(f"{name!r}: {count} MatMuls in INT8, max |INT8 - PyTorch| = {worst:.2e}")
    manifest.validation.export_max_abs_error = errors
    manifest.validation.tolerance = max(manifest.validation.tolerance, 2 * max(errors.values()))
    manifest.cpu_precision = "int8"
    write_manifest(package.path, manifest)
    return errors


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.cpu_precision", description="An INT8 copy of a policy package.")
    p.add_argument("package", help="an exported (FP32) policy package")
    p.add_argument("--out", required=True, help="the INT8 package directory to create")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with signals_interrupt():  # SIGTERM/SIGHUP remove the staging folder like Ctrl-C
        return run_command(lambda: int8_copy(Path(args.package), Path(args.out), args.force))


def int8_copy(package: Path, out: Path, force: bool) -> int:
    """Copy `package` to `out` and quantize the copy; nothing is left at `out` if that fails."""
    if out.exists() and not force:
        raise ExportError(f"{out} already exists; pass --force to overwrite it")
    with staged_directory(out, replace=force) as tmp:
        shutil.copytree(package, tmp, dirs_exist_ok=True)
        tmp.chmod(0o755)  # copytree gave it the source's mode; quantizing writes into it
        quantize_package(tmp, progress=lambda m: print(m, file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
