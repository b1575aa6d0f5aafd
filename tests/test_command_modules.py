"""Command modules only parse and call: none imports another command, export imports no command module, and
building the `edge` parser imports no ONNX.

A command is a module of edge/commands/ that defines `add_parser` (what edge/cli.py registers); what commands share
lives in a helper module there (no `add_parser`) or below, in edge/sim and edge/robot. Read from import
statements, also those inside functions.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.test_import_direction import ROOT, imports, module_name

COMMANDS = ROOT / "edge" / "commands"


def command_modules(folder: Path) -> set[str]:
    """The modules of `folder` that define a top-level `add_parser`, as dotted names."""
    found = set()
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        if any(isinstance(node, ast.FunctionDef) and node.name == "add_parser" for node in tree.body):
            found.add(module_name(path))
    return found


def imported_commands(path: Path, commands: set[str]) -> list[str]:
    """`line: module` for each import in `path` of a command module other than itself."""
    me = module_name(path)
    return [f"{line}: {target}" for line, target in imports(path)
            if target != me and any(target == c or target.startswith(c + ".") for c in commands)]


def test_no_command_module_imports_another():
    commands = command_modules(COMMANDS)
    assert "edge.commands.run" in commands and "edge.commands.shared" not in commands
    found = {str(p.relative_to(ROOT)): hits for p in sorted(COMMANDS.glob("*.py"))
             if (hits := imported_commands(p, commands))}
    assert found == {}, "commands import commands (move what they share into a helper module): " + repr(found)


def test_export_imports_no_command_module():
    found = [f"{p.relative_to(ROOT)}:{line} imports {target}" for p in sorted((ROOT / "export").rglob("*.py"))
             for line, target in imports(p) if target == "edge.commands" or target.startswith("edge.commands.")]
    assert found == []


def test_the_check_finds_a_command_importing_a_command(tmp_path, monkeypatch):
    """The checker itself: a function-level import of a command is found, one of a helper module is not."""
    folder = tmp_path / "edge" / "commands"
    folder.mkdir(parents=True)
    (folder / "a.py").write_text("def add_parser(sub):\n    pass\n")
    (folder / "helpers.py").write_text("X = 1\n")
    (folder / "b.py").write_text("from edge.commands.helpers import X\n\ndef add_parser(sub):\n"
                                 "    from edge.commands.a import add_parser\n")
    monkeypatch.setattr(sys.modules["tests.test_import_direction"], "ROOT", tmp_path)
    commands = command_modules(folder)
    assert commands == {"edge.commands.a", "edge.commands.b"}
    assert imported_commands(folder / "b.py", commands) == ["4: edge.commands.a.add_parser"]
    assert imported_commands(folder / "helpers.py", commands) == []


def test_the_edge_parser_loads_neither_onnx_nor_onnxruntime():
    """`edge --help` and every sub-command's --help on a robot: building the whole argparse tree and parsing reads
    no graph, so it imports no ONNX (slow to import; a robot may lack it until a command needs it)."""
    probe = ("import sys\nfrom edge.cli import build_parser\nparser = build_parser()\n"
             "names = parser._subparsers._group_actions[0].choices\n"
             "for argv in [['--help']] + [[name, '--help'] for name in names]:\n"
             "    try:\n        parser.parse_args(argv)\n    except SystemExit:\n        pass\n"
             "print('COMMANDS', len(names))\n"
             "print('LOADED', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.rpartition("COMMANDS")[2].split()[0]) >= 15  # every command's parser was built
    assert result.stdout.rpartition("LOADED")[2].split() == []
