"""FP16 copies of a package's graphs and the FP16 accuracy preflight, on the workstation's CPU.

convert.py rewrites an FP32 graph into FP16 with FP32 islands, compare.py measures FP16 against FP32
(per graph and through policy steps), preflight.py stages, checks and records the copies in the package,
__main__.py is the command line:

    python -m export.fp16 <package> [--steps 8] [--tolerance 0.02] [--seed 0]
"""
