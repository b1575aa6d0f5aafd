"""The export error tree: `ExportError` is the root of every error the workstation side raises on purpose.

It derives from `edge.EdgeError` because an export is refused for what the runtime would refuse
(the exporter loads the package it wrote with the runtime's own loader), and so that the one exit-status
mapping in edge/exit_status.py serves `edge-export` without edge importing export.
"""

from __future__ import annotations

from edge.errors import EdgeError


class ExportError(EdgeError):
    """Root of every error export raises on purpose; raised as such when a graph cannot be exported or checked."""


class CheckpointError(ExportError):
    """The checkpoint directory is incomplete, inconsistent, or does not match the model."""


class Fp16Error(ExportError):
    """A graph could not be converted to FP16, or the FP16 graph does not run."""
