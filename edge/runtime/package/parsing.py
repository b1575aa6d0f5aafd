"""JSON to typed manifest: every value parsed to its dataclass field's type, naming the field on any mismatch.

`parse_field` is the house's one typed-JSON reader: the exporter reads a LeRobot config.json with it too, under its
own FieldRules (stricter: sizes and counts bounded, numbers finite; its errors name config.json)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Union

from calibration.strict_files import brief, brief_keys
from edge.errors import OptionError, PackageError
from edge.runtime.package.checks import check_manifest
from edge.runtime.package.fields import field_ref
from edge.runtime.package.manifest import MANIFEST_FORMAT, Manifest
from edge.runtime.package.policy_sections import POLICY_SECTIONS


@dataclass(frozen=True)
class FieldRules:
    """How one kind of JSON file names a field in its errors, and what it asks of values beyond their types."""

    name: Callable[[str], str]  # "manifest field 'x'", "config.json field 'x'"
    error: type[Exception]
    ints: tuple[int, int] | None = None  # every integer in this closed range (LeRobot configs: sizes and counts)
    finite: bool = False  # every number finite


MANIFEST = FieldRules(field_ref, PackageError)


def described(value: Any) -> str:
    """A wrong value as an error shows it: bounded repr and type ('20' (str)), a container by its type alone."""
    return f"{brief(value)} ({type(value).__name__})" if not isinstance(value, (dict, list)) else type(value).__name__


def parse_field(tp: Any, value: Any, where: str, rules: FieldRules = MANIFEST) -> Any:
    """`value` from JSON as type `tp` (a dataclass, list/dict of, Optional, int, float, str, bool or Any); `where`
    names the field in errors, as `rules` say (a manifest's by default; export/config_fields.py reads config.json;
    "" for a whole file's top level)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def refuse(what: str) -> Exception:
        return rules.error(f"{rules.name(where)} {what}")

    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _parse_dataclass(tp, value, where, rules)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return parse_field(inner, value, where, rules)
    if origin is list:
        if not isinstance(value, list):
            raise refuse(f"must be a list, got {described(value)}")
        return [parse_field(args[0], v, f"{where}[{i}]", rules) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise refuse(f"must be an object, got {described(value)}")
        return {k: parse_field(args[1], v, f"{where}.{k}", rules) for k, v in value.items()}
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        if rules.ints is not None and not rules.ints[0] <= value <= rules.ints[1]:
            raise refuse(f"is a size or count and must be in {rules.ints[0]}..{rules.ints[1]}, got {brief(value)}")
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and (not rules.finite or math.isfinite(value)):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    kind = {bool: "true or false", int: "an integer", float: "a finite number" if rules.finite else "a number",
            str: "a string"}[tp]
    raise refuse(f"must be {kind}, got {described(value)}")


def _parse_dataclass(cls: type, data: Any, where: str, rules: FieldRules) -> Any:
    what = rules.name(where) if where else "the file"
    if not isinstance(data, dict):
        raise rules.error(f"{what} must be an object, got {described(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise rules.error(f"{what} has unknown key(s) [{brief_keys(unknown)}]")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise rules.error(f"{what} is missing key(s) {missing}")
    hints = typing.get_type_hints(cls)
    values = {k: parse_field(hints[k], v, f"{where}.{k}" if where else k, rules) for k, v in data.items()}
    try:
        return cls(**values)
    except OptionError as exc:  # a section's own checks (SchedulerConfig)
        raise rules.error(f"{rules.name(where)}: {exc}") from None


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

