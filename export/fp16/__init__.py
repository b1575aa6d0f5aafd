"""FP16 copies of a package's graphs and the FP16 accuracy preflight, on the workstation's CPU.

convert.py rewrites an FP32 graph into FP16 with FP32 islands (after rewrites.py's FP32 rewrites) and says
where it holds FP16 values, numerics.py screens those values' range and simulates FP16 activations on the CPU,
compare.py measures against FP32 (per graph and through policy steps), preflight.py stages, checks and records
the copies in the package, __main__.py is the command line:

    python -m export.fp16 <package> [--steps 8] [--tolerance 0.02] [--seed 0]
"""
