"""The house's import rules (docs/architecture.md), read from the code's own import statements.

Packages: firmware_bridge <- calibration <- edge <- export, never back. Inside edge: runtime <- serve <- robot <- sim
<- commands. Inside firmware_bridge the emulator stands above the bus and the safety layer. Every import counts,
also those inside functions and under TYPE_CHECKING. A second set of tests checks what a process loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("firmware_bridge", "calibration", "edge", "export")  # ground floor first
# Within a package: the layers from the ground up; a module outside these folders is the package's own top.
LAYERS = {
    "edge": ("edge.errors", "edge.runtime", "edge.serve", "edge.robot", "edge.sim", "edge.commands"),
    "firmware_bridge": ("firmware_bridge.errors", "firmware_bridge.tables", "firmware_bridge.protocol",
                        "firmware_bridge.bus", "firmware_bridge.safety", "firmware_bridge.emulator"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
                    if node.level else node.module)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def product_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def layer(module: str, rules: tuple[str, ...]) -> int | None:
    """Index of the layer `module` belongs to (longest matching prefix), None for the package's own top."""
    matches = [i for i, prefix in enumerate(rules) if module == prefix or module.startswith(prefix + ".")]
    return max(matches) if matches else None


def violations() -> list[str]:
    found = []
    for path in product_files():
        source = module_name(path)
        top = source.split(".")[0]
        for line, target in imports(path):
            target_top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if target_top in PACKAGES and PACKAGES.index(target_top) > PACKAGES.index(top):
                found.append(f"{where} (a lower floor imports a higher one)")
            if target_top == top and top in LAYERS:
                mine, theirs = layer(source, LAYERS[top]), layer(target, LAYERS[top])
                if mine is not None and theirs is not None and theirs > mine:
                    found.append(f"{where} ({LAYERS[top][mine]} sits below {LAYERS[top][theirs]})")
    return found


def test_the_rules_see_imports_in_functions_and_relative_ones(tmp_path, monkeypatch):
    """The checker itself: a function-level import and a relative import are both found."""
    pkg = tmp_path / "edge" / "runtime"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text("def f():\n    from edge.robot import drive\n\nfrom ..sim import reach\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGES", ("edge",))
    assert sorted(t for _, t in imports(pkg / "bad.py")) == ["edge.robot.drive", "edge.sim.reach"]
    assert len(violations()) == 2


def test_imports_run_one_way():
    assert violations() == []


def run_python(code: str) -> set[str]:
    """The modules of this project (and a few heavy dependencies) a fresh interpreter holds after `code`."""
    probe = (code + "\nimport sys\nprint('MODULES', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('edge', 'calibration', 'firmware_bridge', 'export', 'yaml', 'cv2', 'serial', 'dynamixel_sdk', "
             "'torch', 'pty'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.rpartition("MODULES")[2].split())


def loaded(modules: set[str], *prefixes: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_import_edge_loads_only_the_runtime():
    modules = run_python("import edge")
    assert "edge.runtime.package" in modules
    assert loaded(modules, "edge.robot", "edge.sim", "edge.commands", "firmware_bridge", "export",
                  "yaml", "cv2", "serial", "dynamixel_sdk", "torch") == []
    assert loaded(modules, "calibration") == ["calibration", "calibration.strict_files"]  # the one file reader


def test_the_bus_loads_without_the_emulator():
    modules = run_python("import firmware_bridge.bus, firmware_bridge.safety")
    assert "firmware_bridge.bus" in modules
    assert loaded(modules, "firmware_bridge.emulator", "pty", "calibration", "edge") == []


def test_the_emulator_imports_on_its_own():
    modules = run_python("from firmware_bridge.emulator import ServoEmulator")
    assert "firmware_bridge.emulator" in modules
    assert loaded(modules, "calibration", "edge", "export") == []


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["calibrate", "--help"]])
def test_starting_the_edge_command_loads_no_robot_code(argv):
    """Building the parser (every sub-command's options) loads neither calibration (but its file reader), yaml, the
    bus nor the emulator."""
    modules = run_python(f"from edge.cli import build_parser\ntry:\n    build_parser().parse_args({argv!r})\n"
                         "except SystemExit:\n    pass")
    assert "edge.commands.run" in modules
    assert loaded(modules, "yaml", "firmware_bridge.bus", "firmware_bridge.safety",
                  "firmware_bridge.emulator", "dynamixel_sdk", "serial", "cv2", "export", "torch") == []
    assert set(loaded(modules, "calibration")) <= {"calibration", "calibration.strict_files"}  # the file reader
