"""Find tensors stored outside an ONNX file by reading its protobuf wire format directly.

An ONNX tensor may keep its data in another file ("external data"); unmix refuses such
graphs, since opening one would make the runtime read a file the user never named. The
``onnx`` package can answer that, but importing it and parsing a 150-MB graph costs about
0.7 s per run; this walker visits only the messages that can hold tensors (graph, node,
attribute, function, sparse tensor) and skips every other field by its length, so it reads
a graph's structure, not its weights, and imports nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

# message kinds and, for each, the fields (number → kind) that can lead to a tensor
_MODEL, _GRAPH, _FUNCTION, _NODE, _ATTRIBUTE, _SPARSE, _TENSOR = range(7)
_CHILDREN: dict[int, dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _FUNCTION: {7: _NODE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
}
#: ``TensorProto`` fields: ``external_data`` (13) and ``data_location`` (14, ``EXTERNAL = 1``)
_EXTERNAL_DATA, _DATA_LOCATION, _EXTERNAL = 13, 14, 1
#: deepest nesting followed (graphs in attributes in nodes in graphs …)
MAX_DEPTH = 64


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise WireError("truncated or overlong varint")


def _fields(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field, wire type, value or start, stop)`` of each field in ``data[start:end]``."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos, end)
            yield field, wire, value, pos
        elif wire == 2:
            size, pos = _varint(data, pos, end)
            if pos + size > end:
                raise WireError("a field runs past the end of its message")
            yield field, wire, pos, pos + size
            pos += size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise WireError(f"unsupported wire type {wire}")
    if pos != end:
        raise WireError("a fixed-size field runs past the end of its message")


def has_external_data(data: bytes) -> bool:
    """Whether any tensor of the ONNX model ``data`` keeps its values in another file.

    Raises:
        WireError: ``data`` is not a well-formed protobuf message, or nests deeper than
            :data:`MAX_DEPTH`.
    """
    stack = [(_MODEL, 0, len(data), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise WireError(f"messages nested deeper than {MAX_DEPTH}")
        children = _CHILDREN.get(kind, {})
        for field, wire, first, second in _fields(data, start, end):
            if kind == _TENSOR:
                if field == _EXTERNAL_DATA and wire == 2:
                    return True
                if field == _DATA_LOCATION and wire == 0 and first == _EXTERNAL:
                    return True
            elif wire == 2 and field in children:
                stack.append((children[field], first, second, depth + 1))
    return False
