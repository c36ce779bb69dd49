#!/usr/bin/python3
"""Builds the detector's small ONNX test models (tests/fixtures/detector/) with python3-onnx.

  tiny_yolov5_face.onnx  A real YOLOv5-layout detector: input "images" [1,3,128,128] (RGB,
                         0..1), one output [1, 16, 6] = cx cy w h obj cls per cell of a 4x4
                         grid at stride 32, decoded in-graph the way YOLOv5's exported Detect
                         head does it (sigmoid; xy = (2s - 0.5 + grid) * stride; wh = (2s)^2 *
                         anchor). Its single conv makes the objectness logit 20 * (mean
                         brightness of the cell - 0.5): a bright 32x32 block on a dark
                         background is a "face" exactly the size of its cell.
  layernorm_opset17.onnx A graph OpenCV 4.6's ONNX importer rejects (LayerNormalization,
                         opset 17, as in ConvNeXt/YOLOv8-era exports): for the clear-error test.

Run: /usr/bin/python3 scripts/make_detector_fixtures.py   (deterministic; rewrites both files)
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "detector")
S, STRIDE, ANCHOR = 128, 32, 32.0
G = S // STRIDE


def tiny_yolov5():
    w = np.zeros((6, 3, STRIDE, STRIDE), np.float32)
    b = np.zeros((6,), np.float32)
    k = 20.0
    w[4] = k / (3 * STRIDE * STRIDE)  # obj logit = k * mean(pixel) - k/2
    b[4] = -k / 2
    b[5] = 10.0  # one class: face
    yy, xx = np.meshgrid(np.arange(G), np.arange(G), indexing="ij")
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)[None]  # [1, 16, 2]
    inits = [
        numpy_helper.from_array(w, "conv.weight"),
        numpy_helper.from_array(b, "conv.bias"),
        numpy_helper.from_array(np.array([1, 6, G * G], np.int64), "shape"),
        numpy_helper.from_array(grid, "grid"),
        numpy_helper.from_array(np.array([2.0], np.float32), "two"),
        numpy_helper.from_array(np.array([0.5], np.float32), "half"),
        numpy_helper.from_array(np.array([float(STRIDE)], np.float32), "stride"),
        numpy_helper.from_array(np.full((1, G * G, 2), ANCHOR, np.float32), "anchor"),  # per cell, as YOLOv5 exports anchor_grid
        numpy_helper.from_array(np.array([0], np.int64), "s0"),
        numpy_helper.from_array(np.array([2], np.int64), "s2"),
        numpy_helper.from_array(np.array([4], np.int64), "s4"),
        numpy_helper.from_array(np.array([6], np.int64), "s6"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "conv.weight", "conv.bias"], ["c"], kernel_shape=[STRIDE, STRIDE],
                         strides=[STRIDE, STRIDE]),
        helper.make_node("Sigmoid", ["c"], ["sg"]),
        helper.make_node("Reshape", ["sg", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # [1, 16, 6]
        helper.make_node("Slice", ["t", "s0", "s2", "ax2"], ["xy_s"]),
        helper.make_node("Slice", ["t", "s2", "s4", "ax2"], ["wh_s"]),
        helper.make_node("Slice", ["t", "s4", "s6", "ax2"], ["conf"]),
        helper.make_node("Mul", ["xy_s", "two"], ["xy2"]),
        helper.make_node("Sub", ["xy2", "half"], ["xy3"]),
        helper.make_node("Add", ["xy3", "grid"], ["xy4"]),
        helper.make_node("Mul", ["xy4", "stride"], ["xy"]),
        helper.make_node("Mul", ["wh_s", "two"], ["wh2"]),
        helper.make_node("Mul", ["wh2", "wh2"], ["wh3"]),
        helper.make_node("Mul", ["wh3", "anchor"], ["wh"]),
        helper.make_node("Concat", ["xy", "wh", "conf"], ["output0"], axis=2),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolov5_face",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, S, S])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, G * G, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)], producer_name="moeforge-fixtures")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def layernorm_opset17():
    scale = numpy_helper.from_array(np.ones((8,), np.float32), "ln.scale")
    bias = numpy_helper.from_array(np.zeros((8,), np.float32), "ln.bias")
    node = helper.make_node("LayerNormalization", ["x", "ln.scale", "ln.bias"], ["y"], axis=-1, epsilon=1e-6)
    graph = helper.make_graph([node], "layernorm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])], [scale, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="moeforge-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, m in [("tiny_yolov5_face.onnx", tiny_yolov5()), ("layernorm_opset17.onnx", layernorm_opset17())]:
        path = os.path.join(OUT, name)
        onnx.save(m, path)
        print(path, os.path.getsize(path), "bytes")
