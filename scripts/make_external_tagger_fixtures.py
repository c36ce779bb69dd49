#!/usr/bin/python3
"""Makes the tiny external-tagger fixtures in tests/fixtures/tagger/ (Debian's python3-onnx,
numpy, cv2; no Caffe needed).

No published WD14 or Illustration2Vec weights can be had here, so these are small models
in the REAL formats with the real input conventions, whose outputs reveal the
preprocessing:
  wd14_tiny/model.onnx         NHWC 1x448x448x3 float BGR 0..255 -> Transpose -> 64x64 average
                               pool (7x7 grid) -> Gemm -> Sigmoid, one score per row of
                               selected_tags.csv (same header as SmilingWolf's).
  wd14_unsupported/model.onnx  a graph with an Einsum node, which OpenCV 4.6 cannot import.
  i2v_tiny/                    Caffe prototxt + binary caffemodel (NetParameter written with
                               the protobuf wire format by hand) + tag_list.json; 224 px
                               NCHW BGR minus i2v's mean -> 32x32 average pool -> InnerProduct
                               -> Sigmoid ("prob").
  probe.png                    a non-square test picture; expected.json holds, computed here
                               with numpy independently of moeforge, the preprocessed pixels at
                               a few places and both models' scores for it.
Run: /usr/bin/python3 scripts/make_external_tagger_fixtures.py [OUT_DIR]
"""
import json
import os
import struct
import sys

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "tagger")
I2V_MEAN_BGR = np.array([164.76139251, 167.47864617, 181.13838569])  # i2v's make_i2v_with_caffe

SCHEMA_TAGS = ("blonde_hair brown_hair black_hair blue_hair pink_hair purple_hair green_hair red_hair silver_hair "
               "white_hair orange_hair aqua_hair grey_hair long_hair short_hair twintails drill_hair ponytail blush "
               "smile open_mouth hat ribbon glasses blue_eyes red_eyes brown_eyes green_eyes purple_eyes yellow_eyes "
               "pink_eyes aqua_eyes black_eyes orange_eyes").split()


def vocabulary():
    # Rating rows first (as in WD14), the schema's tags with one under its alias
    # (gray_hair for grey_hair), and words the schema does not know.
    general = [t if t != "grey_hair" else "gray_hair" for t in SCHEMA_TAGS] + ["1girl", "solo", "simple_background"]
    return ["general", "sensitive", "questionable", "explicit"], general


def probe_image():
    h, w = 60, 100
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (x * 255 // (w - 1))            # B ramps left to right
    img[..., 1] = (y * 255 // (h - 1))            # G ramps top to bottom
    img[..., 2] = ((x // 10 + y // 10) % 2) * 200 + 30  # R checkerboard
    return img


def wd14_preprocess(bgr, size=448):
    h, w = bgr.shape[:2]
    side = max(h, w)
    sq = np.full((side, side, 3), 255, np.uint8)
    y0, x0 = (side - h) // 2, (side - w) // 2
    sq[y0:y0 + h, x0:x0 + w] = bgr
    interp = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(sq, (size, size), interpolation=interp).astype(np.float32)


def i2v_preprocess(bgr, size=224):
    interp = cv2.INTER_AREA if max(bgr.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(bgr, (size, size), interpolation=interp).astype(np.float32) - I2V_MEAN_BGR.astype(np.float32)


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def write_csv(path, ratings, general):
    with open(path, "w") as f:
        f.write("tag_id,name,category,count\n")
        for i, n in enumerate(ratings):
            f.write(f"{9999999 - i},{n},9,{1000000 - i}\n")
        for i, n in enumerate(general):
            f.write(f"{100 + i},{n},0,{5000 - i}\n")
        f.write(",,,\n")  # the real table ends with an empty row


def make_wd14(rng, names):
    k = len(names)
    W = (rng.standard_normal((147, k)) * 3 / (255 * 12)).astype(np.float32)
    b = (rng.standard_normal(k) * 0.1).astype(np.float32)
    x = helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["batch", 448, 448, 3])
    y = helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["batch", k])
    nodes = [
        helper.make_node("Transpose", ["input_1:0"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[64, 64], strides=[64, 64]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], ["logits"], transB=1),  # as Keras exports: W is k x 147
        helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
    ]
    inits = [helper.make_tensor("W", TensorProto.FLOAT, W.T.shape, W.T.flatten().tolist()),
             helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.tolist())]
    g = helper.make_graph(nodes, "wd14_tiny", [x], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="moeforge-fixture")
    onnx.checker.check_model(m)
    return m, W, b


def make_unsupported():
    x = helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, [1, 448, 448, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 448, 448])
    n = helper.make_node("Einsum", ["input_1:0"], ["out"], equation="bhwc->bchw")
    g = helper.make_graph([n], "unsupported", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="moeforge-fixture")
    onnx.checker.check_model(m)
    return m


# --- protobuf wire format, just what a caffemodel needs --------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(num, payload):  # wire type 2: length-delimited
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def blob_proto(arr):
    shape = field_bytes(1, b"".join(varint(d) for d in arr.shape))  # BlobShape.dim, packed
    data = field_bytes(5, struct.pack("<%df" % arr.size, *arr.astype(np.float32).flatten()))  # BlobProto.data
    return field_bytes(7, shape) + data  # BlobProto.shape = 7


def layer_proto(name, type_, blobs):
    return field_bytes(1, name.encode()) + field_bytes(2, type_.encode()) + b"".join(
        field_bytes(7, blob_proto(b)) for b in blobs)  # LayerParameter.blobs = 7


def make_i2v(rng, k):
    W = (rng.standard_normal((k, 147)) * 3 / (80 * 12)).astype(np.float32)
    b = (rng.standard_normal(k) * 0.1).astype(np.float32)
    prototxt = f"""name: "illust2vec_tag_tiny"
input: "data"
input_shape {{ dim: 1 dim: 3 dim: 224 dim: 224 }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
  pooling_param {{ pool: AVE kernel_size: 32 stride: 32 }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
  inner_product_param {{ num_output: {k} }} }}
layer {{ name: "prob" type: "Sigmoid" bottom: "fc" top: "prob" }}
"""
    model = field_bytes(1, b"illust2vec_tag_tiny") + field_bytes(100, layer_proto("fc", "InnerProduct", [W, b]))
    return prototxt, model, W, b


def main():
    rng = np.random.default_rng(20261125)
    os.makedirs(OUT, exist_ok=True)
    ratings, general = vocabulary()
    names = ratings + general
    img = probe_image()
    cv2.imwrite(os.path.join(OUT, "probe.png"), img)
    expected = {}

    d = os.path.join(OUT, "wd14_tiny")
    os.makedirs(d, exist_ok=True)
    m, W, b = make_wd14(rng, names)
    onnx.save(m, os.path.join(d, "model.onnx"))
    write_csv(os.path.join(d, "selected_tags.csv"), ratings, general)
    pre = wd14_preprocess(img)
    pooled = pre.transpose(2, 0, 1).reshape(3, 7, 64, 7, 64).mean(axis=(2, 4)).reshape(-1)
    scores = sigmoid(pooled.astype(np.float64) @ W + b)
    probes = [(0, 0), (100, 10), (223, 224), (300, 447), (447, 447), (150, 75)]
    expected["wd14"] = {
        "pixels": [{"y": y, "x": x, "bgr": pre[y, x].tolist()} for y, x in probes],
        "scores": {n: float(s) for n, s in zip(names, scores)},
    }

    d = os.path.join(OUT, "wd14_unsupported")
    os.makedirs(d, exist_ok=True)
    onnx.save(make_unsupported(), os.path.join(d, "model.onnx"))
    write_csv(os.path.join(d, "selected_tags.csv"), ratings, general)

    d = os.path.join(OUT, "i2v_tiny")
    os.makedirs(d, exist_ok=True)
    i2v_names = [n.replace("_", " ") for n in general] + ["safe", "questionable", "explicit"]
    prototxt, model, W, b = make_i2v(rng, len(i2v_names))
    with open(os.path.join(d, "illust2vec_tag_tiny.prototxt"), "w") as f:
        f.write(prototxt)
    with open(os.path.join(d, "illust2vec_tag_tiny.caffemodel"), "wb") as f:
        f.write(model)
    with open(os.path.join(d, "tag_list.json"), "w") as f:
        json.dump(i2v_names, f)
    pre = i2v_preprocess(img)
    pooled = pre.transpose(2, 0, 1).reshape(3, 7, 32, 7, 32).mean(axis=(2, 4)).reshape(-1)
    scores = sigmoid(W.astype(np.float64) @ pooled + b)
    probes = [(0, 0), (10, 100), (111, 112), (223, 223), (200, 5)]
    expected["i2v"] = {
        "pixels": [{"y": y, "x": x, "bgr": pre[y, x].tolist()} for y, x in probes],
        "scores": {n: float(s) for n, s in zip(i2v_names, scores)},
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
