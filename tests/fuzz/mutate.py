"""Seeded mutations of JSON-like documents (manifests, robot files, calibration files), files and observations."""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# Values of every JSON type, the out-of-range ones a careless tool or a hostile file would hold.
REPLACEMENTS: list[Any] = [None, True, False, 0, -1, 1, 7, 2 ** 63, -(2 ** 31), 0.5, -0.0, 1e-300, 1e308, -1e308,
                           float("nan"), float("inf"), float("-inf"), "", "x", "../../etc/passwd", "é" * 3, "1",
                           [], [0], [1.5, "a"], {}, {"k": 1}]


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys / indices) below `node`, containers included."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(_paths(value, prefix + (key,)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for key in path:
        node = node[key]
    return node


def _scaled(value: Any, rng: np.random.Generator) -> Any:
    """A number pushed out of range in a way that keeps its type half of the time."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return int(rng.choice([value + 1, value - 1, -value, value * 1000, 0, -1, 2 ** 40]))
    return float(rng.choice([value * 10, -value, value + 1, 0.0, 1e30, -1e30, value * 1e-30]))


def mutate_document(data: Any, rng: np.random.Generator, sections: list[str] | None = None) -> tuple[Any, str, tuple]:
    """A mutated deep copy of `data`, a description, and the path it touched.

    `sections`: top-level keys to pick from uniformly first (so a big free-form subtree does not take
    most of the cases); None picks among all paths."""
    data = copy.deepcopy(data)
    if sections:
        top = (sections[int(rng.integers(len(sections)))],)
        paths = [top] + [top + p for p in _paths(data.get(top[0]) if isinstance(data, dict) else None)] \
            if isinstance(data, dict) and top[0] in data else [top]
    else:
        paths = _paths(data)
    path = paths[int(rng.integers(len(paths)))]
    parent = _get(data, path[:-1])
    key = path[-1]
    present = (isinstance(parent, dict) and key in parent) or (isinstance(parent, list) and key < len(parent))
    ops = ["delete", "retype", "scale", "add_key", "shrink"] if present else ["add_key"]
    op = ops[int(rng.integers(len(ops)))]
    old = parent[key] if present else None
    if op == "delete":
        del parent[key]
    elif op == "retype":
        parent[key] = copy.deepcopy(REPLACEMENTS[int(rng.integers(len(REPLACEMENTS)))])
    elif op == "scale" and isinstance(old, (int, float)):
        parent[key] = _scaled(old, rng)
    elif op == "shrink" and isinstance(old, (list, str)) and old:
        parent[key] = old[: int(rng.integers(len(old)))]
    elif op == "shrink" and isinstance(old, dict) and old:
        victim = list(old)[int(rng.integers(len(old)))]
        del old[victim]
        path = path + (victim,)
    else:
        target = old if isinstance(old, dict) else parent if isinstance(parent, dict) else None
        if target is None:
            parent[key] = copy.deepcopy(REPLACEMENTS[int(rng.integers(len(REPLACEMENTS)))])
            op = "retype"
        else:
            target["unexpected_key"] = 1
            op = "add_key"
    return data, f"{op} {'.'.join(map(str, path))} (was {_short(old)})", path


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


def damage_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """Truncated, bit-flipped, zeroed or replaced file contents."""
    kind = ["truncate", "flip", "zero_block", "empty", "garbage"][int(rng.integers(5))]
    if kind == "truncate":
        cut = int(rng.integers(len(data))) if data else 0
        return data[:cut], f"truncated to {cut} of {len(data)} bytes"
    if kind == "flip" and data:
        buf = bytearray(data)
        spots = rng.integers(0, len(buf), size=int(rng.integers(1, 9)))
        for i in spots:
            buf[int(i)] ^= 1 << int(rng.integers(8))
        return bytes(buf), f"{len(spots)} bit(s) flipped"
    if kind == "zero_block" and data:
        start = int(rng.integers(len(data)))
        end = min(len(data), start + int(rng.integers(1, 4096)))
        return data[:start] + bytes(end - start) + data[end:], f"bytes {start}..{end} zeroed"
    if kind == "empty":
        return b"", "emptied"
    return bytes(rng.integers(0, 256, size=int(rng.integers(1, 2048)), dtype=np.uint8)), "replaced by random bytes"


def damage_archive(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    """A validation .npz with a member removed, reshaped, retyped or turned into a pickled object array, or
    damaged bytes."""
    kind = ["bytes", "drop", "reshape", "retype", "object"][int(rng.integers(5))]
    if kind == "bytes":
        return damage_bytes(data, rng)
    with np.load(io.BytesIO(data)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    key = sorted(arrays)[int(rng.integers(len(arrays)))]
    if kind == "drop":
        del arrays[key]
    elif kind == "reshape":
        arrays[key] = arrays[key].reshape(-1)[: max(1, arrays[key].size - 1)]
    elif kind == "retype":
        arrays[key] = arrays[key].astype([np.float64, np.int32, np.float16][int(rng.integers(3))])
    out = io.BytesIO()
    if kind == "object":
        with zipfile.ZipFile(out, "w") as zf:  # np.savez with allow_pickle: an object array member
            for k, v in arrays.items():
                buf = io.BytesIO()
                np.save(buf, np.array([v, "x"], dtype=object) if k == key else v, allow_pickle=True)
                zf.writestr(f"{k}.npy", buf.getvalue())
    else:
        np.savez(out, **arrays)
    return out.getvalue(), f"{kind} {key}"


def bad_value(value: np.ndarray, rng: np.random.Generator) -> tuple[Any, str]:
    """An observation value gone wrong: type, shape, dtype, NaN/inf, extreme or odd layout."""
    kinds = ["list", "scalar", "none", "string", "shape_plus", "shape_minus", "transpose", "dtype", "nan", "inf",
             "extreme", "huge64", "noncontig", "zero_d", "readonly"]
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "list":
        return value.tolist(), kind
    if kind == "scalar":
        return float(rng.standard_normal()), kind
    if kind == "none":
        return None, kind
    if kind == "string":
        return "observation", kind
    if kind == "shape_plus":
        return np.concatenate([value.reshape(-1), value.reshape(-1)[:1]]).astype(value.dtype), kind
    if kind == "shape_minus":
        return value.reshape(-1)[:-1].copy(), kind
    if kind == "transpose":
        return np.ascontiguousarray(value.T if value.ndim > 1 else value[None]), kind
    if kind == "dtype":
        dtype = [np.float64, np.float16, np.int32, np.uint8, np.int64, bool, np.complex64, object, "U3"][
            int(rng.integers(9))]
        return value.astype(dtype), f"dtype {np.dtype(dtype)}"
    bad = value.astype(np.float32) if value.dtype != np.uint8 else value.copy()
    i = int(rng.integers(bad.size))
    if kind in ("nan", "inf"):
        if bad.dtype == np.uint8:
            return bad.astype(np.float32), f"{kind} as float image"
        bad.reshape(-1)[i] = np.nan if kind == "nan" else -np.inf
        return bad, f"{kind} at {i}"
    if kind == "extreme":
        if bad.dtype == np.uint8:
            return np.full_like(bad, 255), "saturated image"
        bad.reshape(-1)[i] = float(rng.choice([1e30, -1e30, 3e38, 1e6]))
        return bad, f"extreme at {i}"
    if kind == "huge64":
        big = value.astype(np.float64)
        big.reshape(-1)[i] = 1e300
        return big, f"float64 1e300 at {i}"
    if kind == "noncontig":
        doubled = np.repeat(value[..., None], 2, axis=-1)
        return doubled[..., 0], kind
    if kind == "zero_d":
        return np.asarray(value.reshape(-1)[0]), kind
    frozen = value.copy()
    frozen.flags.writeable = False
    return frozen, kind


def link_package(seed: Path, dst: Path) -> Path:
    """A package directory whose files are symlinks to `seed`'s (cheap copies; replace a file to mutate it)."""
    dst.mkdir(parents=True)
    for f in seed.iterdir():
        if f.is_file():
            (dst / f.name).symlink_to(f.resolve())
    return dst


def damage_text(text: str, yaml_file: bool, rng: np.random.Generator) -> tuple[bytes, str]:
    """A YAML or JSON file damaged as text and bytes: other encodings, stray bytes, a cut mid-character, a key
    written twice, deep nesting, an alias bomb (YAML), huge literals, a value quoted into a string."""
    kind = ["latin1", "utf16", "stray_byte", "cut_multibyte", "duplicate", "deep", "bomb", "huge_int",
            "huge_string", "quote_number", "bom"][int(rng.integers(11))]
    lines = text.splitlines(keepends=True)
    if kind == "latin1":
        return ("# é\n" + text if yaml_file else text.replace('"', '"é', 1)).encode("latin-1"), "saved as Latin-1"
    if kind == "utf16":
        return text.encode("utf-16"), "saved as UTF-16"
    if kind == "stray_byte":
        data = text.encode()
        at = int(rng.integers(len(data) + 1))
        return data[:at] + bytes([int(rng.choice([0x80, 0xC3, 0xFF, 0xFE, 0x00]))]) + data[at:], f"a stray byte at {at}"
    if kind == "cut_multibyte":
        data = (text.rstrip() + (' # é' if yaml_file else '')).encode()
        if not yaml_file:
            data = text.replace('"', '"é', 1).encode()
            at = data.index("é".encode()) + 1
            return data[:at], "cut inside a two-byte character"
        return data[:-1], "cut inside a two-byte character"
    if kind == "duplicate":
        keyed = [i for i, line in enumerate(lines) if (":" in line and not line.lstrip().startswith(("-", "#")))]
        if not keyed:
            return text.encode(), "unchanged (no key line)"
        i = keyed[int(rng.integers(len(keyed)))]
        return "".join(lines[:i + 1] + [lines[i]] + lines[i + 1:]).encode(), f"line {i + 1} written twice"
    if kind == "deep":
        depth = int(rng.choice([65, 1000, 100_000]))
        nest = "[" * depth + "]" * depth
        return (text.replace(":", ": " + nest + " #", 1) if yaml_file else
                text.replace(":", ": " + nest + ", \"x\":", 1)).encode(), f"{depth} levels of nesting"
    if kind == "bomb" and yaml_file:
        bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"a{i + 1}: &a{i + 1} [{', '.join([f'*a{i}'] * 9)}]\n" for i in range(int(rng.integers(3, 9))))
        return (bomb + text).encode(), "an alias bomb on top"
    if kind == "huge_int":
        return text.replace(": ", ": " + "9" * int(rng.choice([20, 5000, 100_000])) + ("\n#" if yaml_file else ", \"y\": "),
                            1).encode(), "a huge integer literal"
    if kind == "huge_string":
        return text.replace(": ", ": \"" + "x" * 1_000_000 + "\"" + ("\n#" if yaml_file else ", \"z\": "),
                            1).encode(), "a 1 MB string"
    if kind == "quote_number":
        import re
        numbers = list(re.finditer(r"(?<=: )-?\d+(\.\d+)?", text))
        if not numbers:
            return text.encode(), "unchanged (no number)"
        m = numbers[int(rng.integers(len(numbers)))]
        return (text[:m.start()] + f'"{m.group()}"' + text[m.end():]).encode(), f"number {m.group()} quoted"
    return b"\xef\xbb\xbf" + text.encode(), "a UTF-8 byte-order mark"
