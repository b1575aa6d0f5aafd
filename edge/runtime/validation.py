"""Self-check: run a package's validation samples on a backend and compare with the export-time outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.runtime.backends.base import Backend
from edge.runtime.package import PolicyPackage


@dataclass
class OutputCheck:
    """Max |error| of one output. FP16 runs are judged like the FP16 preflight: error / max(1, max |ref|)."""

    graph: str
    output: str
    max_abs_error: float
    tolerance: float
    precision: str = "fp32"

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_error <= self.tolerance)  # False for NaN too


def check_package(package: PolicyPackage, backend: Backend, tolerance: float | None = None) -> list[OutputCheck]:
    """Max |backend - PyTorch| per graph output over all validation samples (scaled for FP16 backends)."""
    results = []
    for name, spec in package.manifest.graphs.items():
        worst = {t.name: 0.0 for t in spec.outputs}
        with backend.load(package, name) as session:
            precision = backend.precision_for(package)
            for feeds, expected in zip(package.graph_samples(name, "in"), package.graph_samples(name, "out")):
                got = session.run(feeds)  # compared before the next run: a backend may reuse its output buffers
                for t in spec.outputs:
                    ref = expected[t.name]
                    err = np.abs(got[t.name].astype(np.float64) - ref).max(initial=0.0)
                    if precision == "fp16":
                        err /= max(1.0, float(np.abs(ref).max(initial=0.0)))
                    worst[t.name] = err if np.isnan(err) else max(worst[t.name], float(err))
        if tolerance is not None:
            tol = tolerance
        elif precision == "fp16":
            preflight = package.manifest.fp16_preflight
            tol = preflight.tolerance if preflight is not None else 0.02
        else:
            tol = package.manifest.validation.tolerance
        label = package.manifest.cpu_precision if precision == "fp32" else precision  # an INT8 package's graphs
        results += [OutputCheck(name, out, float(err), tol, label) for out, err in worst.items()]
    return results
