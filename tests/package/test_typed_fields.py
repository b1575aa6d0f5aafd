"""The one typed-JSON reader (edge/runtime/package/parsing.py::parse_field) under its two callers' rules.

A manifest names `manifest field 'x'` and raises PackageError; a LeRobot config.json (export/config_fields.py)
names `config.json field 'x'`, raises CheckpointError and asks more: sizes and counts in 1..MAX_SIZE, finite numbers.
"""

from __future__ import annotations

import math
import re

import pytest

from edge.errors import PackageError
from edge.runtime.package import parse_field

config_fields = pytest.importorskip("export.config_fields")  # imports torch
from export.errors import CheckpointError  # noqa: E402

CONFIG = config_fields.CONFIG


@pytest.mark.parametrize("tp, value, message", [
    (int, True, "field 'f' must be an integer, got True (bool)"),
    (int, 2.0, "field 'f' must be an integer, got 2.0 (float)"),
    (float, "1", "field 'f' must be a"),
    (str, 3, "field 'f' must be a string, got 3 (int)"),
    (bool, 1, "field 'f' must be true or false, got 1 (int)"),
    (list[int], [1, "2"], "field 'f[1]' must be an integer, got '2' (str)"),
    (list[int], {"a": 1}, "field 'f' must be a list, got dict"),
])
def test_both_callers_refuse_a_wrong_type_naming_the_field(tp, value, message):
    with pytest.raises(PackageError, match=f"^{re.escape('manifest ' + message)}"):
        parse_field(tp, value, "f")
    with pytest.raises(CheckpointError, match=f"^{re.escape('config.json ' + message)}"):
        parse_field(tp, value, "f", CONFIG)


def test_config_json_bounds_sizes_and_counts_where_a_manifest_does_not():
    assert parse_field(int, 0, "f") == 0
    with pytest.raises(CheckpointError, match=r"'f' is a size or count and must be in 1\.\.1048576, got 0"):
        parse_field(int, 0, "f", CONFIG)
    with pytest.raises(CheckpointError, match="must be in 1..1048576, got 1048577"):
        parse_field(int | None, config_fields.MAX_SIZE + 1, "f", CONFIG)
    assert parse_field(int | None, None, "f", CONFIG) is None


def test_config_json_asks_for_finite_numbers():
    assert math.isinf(parse_field(float, math.inf, "f"))
    with pytest.raises(CheckpointError, match="'f' must be a finite number, got inf"):
        parse_field(float, math.inf, "f", CONFIG)
    assert parse_field(float, 2, "f", CONFIG) == 2.0 and isinstance(parse_field(float, 2, "f", CONFIG), float)
