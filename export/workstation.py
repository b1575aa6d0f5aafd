"""What the workstation commands need and, when it is missing, the one line that says what to install.

`pip install . && edge demo` installs the robot side only; `edge-export`, `python -m export.fp16` and
`python -m export.train` also need PyTorch and ONNX (the `export` extra). This module imports neither, so the
commands can build their parsers (`--help`) and refuse cleanly without them.
"""

from __future__ import annotations

import importlib

from export.errors import ExportError

INSTALL = "pip install torch==2.13.0 && pip install 'edge-policy-runtime[export]'"
MODULES = ("torch", "onnx", "safetensors")


def require_workstation(command: str, modules: tuple[str, ...] = MODULES) -> None:
    """Raise ExportError naming the missing `modules` and the install command, before anything is imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"{command} runs on the workstation and needs {', '.join(missing)}, which this Python "
                          f"lacks: {INSTALL}")
