"""The workstation's command line, `edge-export`.

    edge-export <pretrained_model dir> --out <package dir> [...]   LeRobot checkpoint → policy package
    edge-export eval <package> [edge eval's options] [--checkpoint DIR]   the package's PyTorch policy on the reach task

A first argument `eval` selects the evaluation (a checkpoint folder named eval is `./eval`).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from edge.exit_status import run_command, signals_interrupt
from edge.option_types import check_modes, count, int_in, int_list, only_with, seed
from edge.runtime.package import CPU_PRECISIONS, MAX_OPSET, WEIGHT_STORAGE
from edge.runtime.package.batches import MAX_SERVE_BATCH
from edge.runtime.package.manifest import MAX_FPS
from edge.sim.eval_command import add_eval_arguments, run_evaluation
from export.workstation import require_workstation


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-export", description="Export a LeRobot checkpoint to a policy package.",
                                epilog="edge-export eval PACKAGE ... evaluates the package's PyTorch policy "
                                       "(edge-export eval --help)")
    p.add_argument("checkpoint", help="LeRobot pretrained_model/ directory (config.json, model.safetensors, ...)")
    p.add_argument("--out", required=True, help="package directory to create")
    p.add_argument("--force", action="store_true", help="overwrite an existing package directory")
    p.add_argument("--samples", type=count, default=3, help="validation samples stored in the package (default 3)")
    p.add_argument("--opset", type=int_in(1, MAX_OPSET), default=17,
                   help=f"ONNX opset (<= {MAX_OPSET} for TensorRT 10.3 / JetPack 6)")
    p.add_argument("--seed", type=seed, default=0, help="seed for the validation samples")
    p.add_argument("--fused-steps", type=count, default=None, metavar="K",
                   help="diffusion: also export a fused graph running K DDIM steps in one call")
    p.add_argument("--weights", choices=WEIGHT_STORAGE, default="float32",
                   help="float16: round the weights to float16 and store them so (half the file size); "
                        "ONNX Runtime still computes in float32 (default float32)")
    p.add_argument("--fps", type=int_in(1, MAX_FPS), default=None,
                   help="the policy's action rate in actions a second (LeRobot's meta/info.json \"fps\"; env.fps "
                        "for simulated training): recorded in the manifest, the robot then advances the policy at it")
    p.add_argument("--serve-batch", type=int_list(2, MAX_SERVE_BATCH), default=(), metavar="B,B,...",
                   help="act, diffusion: also export every graph with these static batch sizes (e.g. 2,4,8) into the "
                        "package's serve/ folder, for `edge serve` to run batches on; the package identity is "
                        "unchanged and the robot never reads them (docs/serving.md, Batching)")
    p.add_argument("--no-tensorrt-check", action="store_true",
                   help="export graphs even if TensorRT 10.3's ONNX parser would refuse them (ONNX Runtime only)")
    p.add_argument("--no-graph-rewrites", action="store_true",
                   help="keep the graphs as PyTorch traced them (by default large 1-D convolutions become "
                        "prepacked matrix products, faster on ONNX Runtime's CPU kernels)")
    p.add_argument("--cpu-precision", choices=CPU_PRECISIONS, default="fp32",
                   help="int8: matrix products with 8-bit weights and int8 activations for CPUs with int8 dot "
                        "products (AVX-512 VNNI, ARM SDOT); ONNX Runtime only, for the families whose fidelity "
                        "was shown (docs/performance.md)")
    p.add_argument("--dataset-info", type=Path, default=None, metavar="meta/info.json",
                   help="the training dataset's LeRobot meta/info.json: its joint names and fps go into the package, "
                        "and `edge run` checks the robot's joints against them (default: found through the "
                        "checkpoint's train_config.json, dataset.root or $HF_LEROBOT_HOME/<repo_id>)")
    p.add_argument("--fp16-check", action="store_true",
                   help="then run the FP16 preflight (python -m export.fp16): FP16 graphs into the package, "
                        "FP16 vs FP32 error in the manifest; exit status 1 if it fails")
    return p


def export(args: argparse.Namespace) -> int:
    """The command's body: export, then the FP16 preflight if asked."""
    require_workstation("edge-export")
    from export.families.base import ExportOptions
    from export.pipeline import export_package

    extra = {"fused_steps": args.fused_steps} if args.fused_steps is not None else {}
    options = ExportOptions(samples=args.samples, seed=args.seed, opset=args.opset, weights=args.weights,
                            graph_rewrites=not args.no_graph_rewrites, cpu_precision=args.cpu_precision,
                            fps=args.fps, serve_batches=args.serve_batch, extra=extra)
    export_package(args.checkpoint, args.out, options, force=args.force,
                   progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                   tensorrt_check=not args.no_tensorrt_check, dataset_info=args.dataset_info)
    if args.fp16_check:
        from export.fp16.preflight import run_preflight
        return run_preflight(args.out)
    return 0


def build_eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-export eval",
                                description="`edge eval` with the PyTorch networks rebuilt from the package's source "
                                            "checkpoint in place of its graphs (export/torch_backend.py).")
    add_eval_arguments(p)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="the pretrained_model directory (default: the manifest's source)")
    p.add_argument("--any-checkpoint", action="store_true",
                   help="take --checkpoint even if it is not the one the package was exported from (sha256)")
    only_with(p, "--any-checkpoint", "--checkpoint")
    return p


def evaluate_pytorch(args: argparse.Namespace) -> int:
    """`edge eval`'s evaluation (edge/sim/eval_command.py), the runner driving PyTorch modules: CPU, FP32."""
    require_workstation("edge-export eval")
    from export.torch_backend import TorchBackend

    return run_evaluation(args, partial(TorchBackend, args.checkpoint, verify=not args.any_checkpoint), "pytorch",
                          name="pytorch")


def main(argv: list[str] | None = None) -> int:
    """Export (the default) or, with a first argument `eval`, evaluate; exit statuses from edge/exit_status.py."""
    argv = sys.argv[1:] if argv is None else list(argv)
    eval_mode = argv[:1] == ["eval"]
    parser = build_eval_parser() if eval_mode else build_parser()
    args = parser.parse_args(argv[1:] if eval_mode else argv)
    check_modes(parser, args)
    with signals_interrupt():  # SIGTERM/SIGHUP remove the staging folder like Ctrl-C
        return run_command(lambda: evaluate_pytorch(args) if eval_mode else export(args))


if __name__ == "__main__":
    sys.exit(main())
