"""docs/architecture.md's "Where new things plug in" table names only files and folders that exist.

Every backticked path in a row's second column (a word with a `/`, or a file name with an extension) must exist;
`<family>` and `<name>` stand for any one name, so such a path must match at least one file or folder.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PLACEHOLDER = re.compile(r"<[a-z_]+>")
FILE = re.compile(r"^[\w.<>/-]+\.(py|json|yaml|md|npz|onnx|txt)$")


def table_rows(text: str, heading: str) -> dict[str, str]:
    """{first cell: second cell} of the first table under `heading` (cells split on unescaped pipes)."""
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[0] != "new …":
            rows[cells[0]] = cells[1]
    return rows


def named_paths(cell: str) -> list[str]:
    """The backticked words of `cell` that are paths (a command line such as `edge eval <name>` is not one)."""
    words = [w for w in re.findall(r"`([^`]+)`", cell) if " " not in w]
    return [w for w in words if "/" in w or FILE.match(w)]


def exists(path: str) -> bool:
    """`path` is there; with a placeholder, some file or folder fits it."""
    if not PLACEHOLDER.search(path):
        return (ROOT / path).exists()
    pattern = PLACEHOLDER.sub("*", path.rstrip("/"))
    return any(p.is_dir() or not path.endswith("/") for p in ROOT.glob(pattern))


ROWS = table_rows(DOC.read_text(), "Where new things plug in")


def test_the_table_has_a_row_for_each_kind_of_plug_in():
    names = {re.sub(r"\*\*(.+?)\*\*.*", r"\1", row) for row in ROWS}
    assert {"policy family", "backend", "servo model", "camera type", "planner", "merge rule", "executor",
            "recorded data", "command", "bundled demo package"} <= names, names


@pytest.mark.parametrize("row", sorted(ROWS))
def test_every_path_a_row_names_exists(row):
    paths = named_paths(ROWS[row])
    assert paths, f"row {row!r} names no file"
    assert [p for p in paths if not exists(p)] == [], f"row {row!r} names paths that do not exist"


def test_the_reader_finds_paths_and_refuses_a_missing_one(tmp_path):
    """The checker itself: paths are told from commands and names, a placeholder matches, a missing file fails."""
    cell = ("`edge/commands/<name>.py` with `add_parser`, `edge eval <name>`, `edge/robot/nothing_here.py`, "
            "`tests/<family>/`, `PolicyRunner \\| RemotePlanner`")
    assert named_paths(cell) == ["edge/commands/<name>.py", "edge/robot/nothing_here.py", "tests/<family>/"]
    assert [exists(p) for p in named_paths(cell)] == [True, False, True]
    doc = ("## Where new things plug in\n\n| new … | files |\n|---|---|\n| **a** | `x/y.py` or `A \\| B` |\n"
           "\n## Next\n")
    assert table_rows(doc, "Where new things plug in") == {"**a**": "`x/y.py` or `A \\| B`"}
