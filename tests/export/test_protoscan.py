"""The external-data check reads the protobuf wire format itself: it must find a tensor
kept in another file wherever ONNX allows one (initialisers, sparse initialisers, node
attributes, subgraphs of Scan/If/Loop, functions) and refuse malformed bytes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from unmix.export.protoscan import MAX_DEPTH, WireError, has_external_data


def external(tensor: TensorProto) -> TensorProto:
    """``tensor`` with its data moved to a (never written) file ``w.bin``."""
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "w.bin"
    return tensor


def weights(name: str) -> TensorProto:
    return numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), name)


def identity_graph(name: str, initializers=(), nodes=()) -> onnx.GraphProto:
    x = helper.make_tensor_value_info(f"{name}_x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [2, 3])
    node = helper.make_node("Identity", [f"{name}_x"], [f"{name}_y"])
    return helper.make_graph([*nodes, node], name, [x], [y], initializer=list(initializers))


def model_bytes(graph: onnx.GraphProto, functions=()) -> bytes:
    model = helper.make_model(graph, functions=list(functions))
    return model.SerializeToString()


def test_self_contained_graph():
    data = model_bytes(identity_graph("g", [weights("w")]))
    assert not has_external_data(data)


def test_initializer_outside():
    assert has_external_data(model_bytes(identity_graph("g", [external(weights("w"))])))


def test_constant_attribute_outside():
    node = helper.make_node("Constant", [], ["c"], value=external(weights("c")))
    assert has_external_data(model_bytes(identity_graph("g", nodes=[node])))


def test_tensor_inside_a_scan_body():
    body = identity_graph("body", [external(weights("w"))])
    scan = helper.make_node("Scan", ["g_x"], ["s"], body=body, num_scan_inputs=1)
    assert has_external_data(model_bytes(identity_graph("g", nodes=[scan])))
    clean = identity_graph("body", [weights("w")])
    scan = helper.make_node("Scan", ["g_x"], ["s"], body=clean, num_scan_inputs=1)
    assert not has_external_data(model_bytes(identity_graph("g", nodes=[scan])))


def test_sparse_initializer_outside():
    values = external(numpy_helper.from_array(np.ones(2, np.float32), "sv"))
    indices = numpy_helper.from_array(np.array([0, 4], np.int64), "si")
    graph = identity_graph("g")
    graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, [2, 3]))
    assert has_external_data(model_bytes(graph))


def test_tensor_inside_a_function():
    node = helper.make_node("Constant", [], ["c"], value=external(weights("c")))
    function = helper.make_function("local", "f", [], ["c"], [node], [helper.make_opsetid("", 17)])
    assert has_external_data(model_bytes(identity_graph("g"), [function]))


def test_agrees_with_onnx_on_a_saved_split_model(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    model = helper.make_model(identity_graph("g", [weights("w")]))
    convert_model_to_external_data(model, location="w.bin", size_threshold=0)
    assert has_external_data(model.SerializeToString())


@pytest.mark.parametrize(
    "data",
    [
        b"\x08\x07garbage that is no protobuf" * 10,
        b"\x3a\xff\xff\xff\xff\x0f",  # graph field longer than the file
        b"\x08\x80\x80",  # truncated varint
        b"\x0f",  # wire type 7
    ],
)
def test_malformed_bytes_raise(data):
    with pytest.raises(WireError):
        has_external_data(data)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (sizes below 2**14 here)."""
    size = len(payload)
    length = bytes([size]) if size < 0x80 else bytes([size & 0x7F | 0x80, size >> 7])
    return bytes([number << 3 | 2]) + length + payload


def test_nesting_is_bounded():
    graph = b""
    for _ in range(MAX_DEPTH // 3 + 1):  # graph.node (1) → node.attribute (5) → attribute.g (6)
        graph = field(1, field(5, field(6, graph)))
    assert not has_external_data(field(7, b""))
    with pytest.raises(WireError, match="nested deeper"):
        has_external_data(field(7, graph))
