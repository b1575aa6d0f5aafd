"""Every product module imports first, on its own: an import cycle that only bites in some import order (a module
that reads a name from a partly initialised one) fails here, whichever module a command or benchmark imports first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("firmware_bridge", "calibration", "edge")
SKIP = ("edge.serve.triton_model",)  # imports Triton's backend utilities, which exist only inside Triton

# One interpreter; before each module the product's own modules are dropped from sys.modules, so each is imported
# as if it were the first (third-party modules stay loaded: only the product's import order is under test).
PROBE = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m.split(".")[0] in {floors!r}]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
"""


def product_modules() -> list[str]:
    names = []
    for floor in FLOORS:
        for path in sorted((ROOT / floor).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if parts[-1] != "__main__" and name not in SKIP:
                names.append(name)
    return names


def test_every_product_module_imports_first_on_its_own():
    modules = product_modules()
    assert "edge.robot.cameras" in modules and len(modules) > 50
    result = subprocess.run([sys.executable, "-c", PROBE.format(floors=FLOORS), *modules], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"modules that fail when imported first:\n{result.stdout}"
