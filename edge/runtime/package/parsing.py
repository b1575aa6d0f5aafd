"""JSON to typed manifest: every value parsed to its dataclass field's type, naming the field on any mismatch."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union

from calibration.strict_files import brief, brief_keys
from edge.errors import OptionError, PackageError
from edge.runtime.package.checks import check_manifest
from edge.runtime.package.fields import field_ref
from edge.runtime.package.manifest import MANIFEST_FORMAT, Manifest
from edge.runtime.package.sections import POLICY_SECTIONS


def _got(value: Any) -> str:
    return f"{brief(value)} ({type(value).__name__})" if not isinstance(value, (dict, list)) else type(value).__name__


def parse_field(tp: Any, value: Any, where: str) -> Any:
    """`value` from JSON as type `tp` (a dataclass, list/dict of, Optional, int, float, str, bool or Any); `where`
    names the manifest field in errors ("" for a whole file's top level)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse_field(inner, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise PackageError(f"{field_ref(where)} must be a list, got {_got(value)}")
        return [parse_field(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise PackageError(f"{field_ref(where)} must be an object, got {_got(value)}")
        return {k: parse_field(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[tp]
    raise PackageError(f"{field_ref(where)} must be {kind}, got {_got(value)}")


def _parse_dataclass(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PackageError(f"{field_ref(where) if where else 'the file'} must be an object, got {_got(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    what = field_ref(where) if where else "the file"
    if unknown:
        raise PackageError(f"{what} has unknown key(s) [{brief_keys(unknown)}]")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise PackageError(f"{what} is missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    values = {k: parse_field(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**values)
    except OptionError as exc:  # a section's own checks (SchedulerConfig)
        raise PackageError(f"{field_ref(where)}: {exc}") from None


def manifest_from_dict(data: Any) -> Manifest:
    """Parse and check a manifest dict; raises PackageError naming the first bad field."""
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise PackageError(f"not a policy package manifest (format is not {brief(MANIFEST_FORMAT)})")
    policy_type = data.get("policy_type")
    if not isinstance(policy_type, str) or policy_type not in POLICY_SECTIONS:
        raise PackageError(f"{field_ref('policy_type')} is {brief(policy_type)}: this runtime runs {sorted(POLICY_SECTIONS)}")
    hints = dict(typing.get_type_hints(Manifest), policy=POLICY_SECTIONS[policy_type])
    fields = {f.name for f in dataclasses.fields(Manifest)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise PackageError(f"the manifest has unknown key(s) [{brief_keys(unknown)}]")
    missing = [f.name for f in dataclasses.fields(Manifest) if f.name not in data and f.default is dataclasses.MISSING]
    if missing:
        raise PackageError(f"the manifest is missing key(s) {missing}")
    m = Manifest(**{k: parse_field(hints[k], v, k) for k, v in data.items()})
    check_manifest(m)
    return m

