"""The one strict reader for the project's YAML and JSON files, and the bounded repr every error message uses.

Every file the project reads (robot file, calibration file, manifest, LeRobot config and processor JSON, caches,
telemetry) goes through here, so each refuses the same things the same way: bytes that are not UTF-8 (one line
naming the file and the offset), a key written twice (yaml.safe_load and json.loads keep the last one silently;
here it is refused naming the key and, for YAML, both lines), nesting deeper than MAX_DEPTH and YAML aliases that
expand beyond MAX_NODES (refused before anything walks the data). It lives in calibration/, the lowest package
that reads files; edge and export pass their own error type, so each refusal stays in its caller's error tree.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import reprlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

MAX_DEPTH = 64  # no file of ours nests deeper than ~8; a deeper one is refused before it is parsed
MAX_NODES = 100_000  # YAML nodes after alias expansion (a 30-line robot file is ~200)
REPR_CHARS = 80

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 3, REPR_CHARS, REPR_CHARS, 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6

ErrorType = Callable[[str], Exception]


def brief(value: Any) -> str:
    """repr(value) bounded in time and length (a 39 MB alias bomb or a 1 MB string renders in ~80 characters)."""
    try:
        text = _repr.repr(value)
    except ValueError:  # an integer past Python's 4,300-digit str() limit
        text = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else f"a {type(value).__name__}"
    return text if len(text) <= REPR_CHARS else text[:REPR_CHARS - 3] + "..."


def brief_keys(keys: Any) -> str:
    """Keys for an "unknown key(s) ..." message: at most six, each bounded, comma-separated."""
    keys = list(keys)
    return ", ".join(brief(k) for k in keys[:6]) + (", ..." if len(keys) > 6 else "")


def read_text(path: str | Path, error: ErrorType, what: str) -> str:
    """The file as UTF-8 text; an unreadable file or undecodable bytes are one `error` line naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return decode(data, path, error, what)


def decode(data: bytes, source: str | Path, error: ErrorType, what: str) -> str:
    """`data` as UTF-8 (a BOM is dropped), else one `error` line naming `source` and the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                    "save it as UTF-8") from None


def _json_depth(text: str) -> int:
    """The deepest [ / { nesting in JSON text, strings skipped; vectorised so a 200,000-level file costs ms."""
    brackets = re.sub(r'"[^"\\]*(?:\\.[^"\\]*)*"|[^\[\]{}"]+', "", text)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps).max())


class _Duplicate(Exception):
    """A key written twice in one mapping (the message says which, and where)."""


class _TooLarge(Exception):
    """Nesting or alias expansion past the bounds (the message says which)."""


def _duplicate_refuser(text: str) -> Callable[[list], dict]:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                needle = re.escape(json.dumps(key)) + r"\s*:"
                lines = sorted({text.count("\n", 0, m.start()) + 1 for m in re.finditer(needle, text)})
                at = f" (lines {', '.join(map(str, lines[:4]))})" if len(lines) > 1 else ""
                raise _Duplicate(f"key {brief(key)} appears twice in one object{at}; keep one")
            result[key] = value
        return result
    return pairs


def parse_json(text: str, source: str | Path, error: ErrorType, what: str) -> Any:
    """Decode JSON text strictly: a key twice in one object refused naming it (and its lines), nesting beyond
    MAX_DEPTH refused before parsing; every refusal is one `error` naming `source`."""
    with _refusals(error, what, source, "JSON", json.JSONDecodeError, str):
        if _json_depth(text) > MAX_DEPTH:
            raise _TooLarge(f"nests deeper than {MAX_DEPTH} levels")
        return json.loads(text, object_pairs_hook=_duplicate_refuser(text))


@contextlib.contextmanager
def _refusals(error: ErrorType, what: str, source: str | Path, language: str, syntax: type[Exception],
              describe: Callable[[Any], str]) -> Iterator[None]:
    """Every way a parse can fail, as one `error` line naming `source` (the parser's syntax errors via `describe`)."""
    try:
        yield
    except _TooLarge as exc:
        raise error(f"{what} {source} {exc}; not a file this project reads") from None
    except _Duplicate as exc:
        raise error(f"{what} {source}: {exc}") from None
    except syntax as exc:
        raise error(f"{what} {source} is not valid {language} ({describe(exc)})") from None
    except RecursionError:
        raise error(f"{what} {source} nests too deeply to read") from None
    except ValueError as exc:  # e.g. an integer literal past Python's 4,300-digit limit
        raise error(f"{what} {source} cannot be read ({brief(str(exc))})") from None


def read_json(path: str | Path, error: ErrorType, what: str) -> Any:
    """read_text + parse_json."""
    return parse_json(read_text(path, error, what), path, error, what)


@functools.cache
def _strict_loader() -> type:
    """SafeLoader that refuses a key written twice in one mapping (merge keys `<<` may still be overridden); made
    on first use, so that importing this module (as `import edge` does) does not load yaml."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeConstructor refuses it below with its own message
                    continue
                if first != key_node.start_mark.line + 1:
                    raise _Duplicate(f"key {brief(key)} appears twice in one mapping (lines {first} and "
                                     f"{key_node.start_mark.line + 1}); keep one")
            return super().construct_mapping(node, deep=deep)
    return StrictLoader


def _expanded_size(root: Any) -> tuple[int, int]:
    """(nodes once every alias is expanded, deepest nesting) of a composed YAML document, without recursion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    import yaml

    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else [])
        if done:
            size[id(node)] = min(MAX_NODES + 1, 1 + sum(size.get(id(c), 0) for c in children))
            depth[id(node)] = 1 + max((depth.get(id(c), 0) for c in children), default=0)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)], depth[id(root)]


def parse_yaml(text: str, source: str | Path, error: ErrorType, what: str) -> Any:
    """Decode YAML text strictly (safe types only): duplicate keys refused naming both lines, nesting beyond
    MAX_DEPTH and alias expansion beyond MAX_NODES refused before anything is built from it."""
    import yaml

    loader = None
    try:
        with _refusals(error, what, source, "YAML", yaml.YAMLError, _yaml_problem):
            loader = _strict_loader()(text)  # its reader refuses control characters here already
            node = loader.get_single_node()
            if node is None:
                return None
            nodes, depth = _expanded_size(node)
            if depth > MAX_DEPTH or nodes > MAX_NODES:
                raise _TooLarge(f"nests deeper than {MAX_DEPTH} levels" if depth > MAX_DEPTH else
                                f"holds more than {MAX_NODES:,} values once its aliases are expanded")
            return loader.construct_document(node)
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_problem(exc: Exception) -> str:
    """PyYAML's several-line message as one line: what it found, and where."""
    import yaml

    if isinstance(exc, yaml.reader.ReaderError):
        return f"character {exc.character!r} at offset {exc.position} is not allowed in YAML"
    if not isinstance(exc, yaml.MarkedYAMLError):
        return brief(str(exc))
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    words = " ".join(w for w in (exc.context, exc.problem) if w)
    return where + (words if len(words) <= 200 else words[:197] + "...")


def read_yaml(path: str | Path, error: ErrorType, what: str) -> Any:
    """read_text + parse_yaml."""
    return parse_yaml(read_text(path, error, what), path, error, what)
