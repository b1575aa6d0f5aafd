"""Which tensors of an ONNX file keep their bytes in another file (ONNX "external data"), read without onnx.

The manifest's sha256 covers a graph file; ONNX Runtime would also read any external-data file a tensor names
(`act.onnx.data` beside it), which no hash covers, so a damaged one would run unnoticed. The exporter embeds
every weight, so `load_package` refuses a graph with external data. This walks the protobuf wire format of
the file (ModelProto -> graphs, functions, nodes, attributes -> tensors) and skips every weight's bytes by their
length, so a 1 GB graph costs milliseconds and no copy of it.
"""

from __future__ import annotations

import mmap
from pathlib import Path

# field numbers (onnx/onnx.proto3)
MODEL_GRAPH, MODEL_FUNCTIONS = 7, 25
GRAPH_NODE, GRAPH_INITIALIZER, GRAPH_SPARSE_INITIALIZER = 1, 5, 15
NODE_ATTRIBUTE, FUNCTION_NODE = 5, 7
ATTR_T, ATTR_G, ATTR_TENSORS, ATTR_GRAPHS, ATTR_SPARSE, ATTR_SPARSES = 5, 6, 10, 11, 22, 23
SPARSE_VALUES, SPARSE_INDICES = 1, 2
TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 8, 13, 14
ENTRY_KEY, ENTRY_VALUE = 1, 2
EXTERNAL = 1
MAX_NESTING = 64  # graphs inside attributes inside graphs ...


class NotOnnx(ValueError):
    """The bytes are not a protobuf message (the backend's load then says what it is)."""


def _varint(buf: memoryview | bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise NotOnnx("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int):  # noqa: ANN202 - a generator of (field, wire type, value)
    """(field number, wire type, value) of one message: an int for varints, a (start, end) span for bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise NotOnnx("a field runs past its message")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise NotOnnx(f"wire type {wire}")
    if pos != end:
        raise NotOnnx("a field runs past its message")


def _tensor(buf: memoryview, span: tuple[int, int], found: list[tuple[str, str]]) -> None:
    name, location, external = "", "", False
    for number, wire, value in _fields(buf, *span):
        if number == TENSOR_NAME and wire == 2:
            name = bytes(buf[value[0]:value[1]]).decode("utf-8", "replace")
        elif number == TENSOR_DATA_LOCATION and wire == 0:
            external = value == EXTERNAL
        elif number == TENSOR_EXTERNAL_DATA and wire == 2:
            entry = {n: bytes(buf[v[0]:v[1]]).decode("utf-8", "replace")
                     for n, w, v in _fields(buf, *value) if w == 2}
            if entry.get(ENTRY_KEY) == "location":
                location, external = entry.get(ENTRY_VALUE, ""), True
    if external:
        found.append((name, location))


def _sparse(buf: memoryview, span: tuple[int, int], found: list[tuple[str, str]]) -> None:
    for number, wire, value in _fields(buf, *span):
        if number in (SPARSE_VALUES, SPARSE_INDICES) and wire == 2:
            _tensor(buf, value, found)


def _nodes_of(buf: memoryview, span: tuple[int, int], node_field: int, found: list, depth: int) -> None:
    for number, wire, value in _fields(buf, *span):
        if number == node_field and wire == 2:
            for n, w, attr in _fields(buf, *value):
                if n == NODE_ATTRIBUTE and w == 2:
                    _attribute(buf, attr, found, depth)


def _attribute(buf: memoryview, span: tuple[int, int], found: list, depth: int) -> None:
    for number, wire, value in _fields(buf, *span):
        if wire != 2:
            continue
        if number in (ATTR_T, ATTR_TENSORS):
            _tensor(buf, value, found)
        elif number in (ATTR_SPARSE, ATTR_SPARSES):
            _sparse(buf, value, found)
        elif number in (ATTR_G, ATTR_GRAPHS):
            _graph(buf, value, found, depth + 1)


def _graph(buf: memoryview, span: tuple[int, int], found: list, depth: int) -> None:
    if depth > MAX_NESTING:
        raise NotOnnx("graphs nested too deeply")
    for number, wire, value in _fields(buf, *span):
        if wire != 2:
            continue
        if number == GRAPH_INITIALIZER:
            _tensor(buf, value, found)
        elif number == GRAPH_SPARSE_INITIALIZER:
            _sparse(buf, value, found)
    _nodes_of(buf, span, GRAPH_NODE, found, depth)


def external_data(path: Path) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor in the ONNX file at `path` whose data lives in another file.
    Raises NotOnnx when the file is not a protobuf message; OSError when it cannot be read."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            buf = memoryview(mapped)
            try:
                found: list[tuple[str, str]] = []
                for number, wire, value in _fields(buf, 0, len(buf)):
                    if number == MODEL_GRAPH and wire == 2:
                        _graph(buf, value, found, 0)
                    elif number == MODEL_FUNCTIONS and wire == 2:
                        _nodes_of(buf, value, FUNCTION_NODE, found, 0)
                return found
            finally:
                buf.release()
