#!/usr/bin/python3
"""The built-in tagger's network in Python PyTorch, for moeforge-tag-bench.

Loads the SAME model file moeforge writes (a torch::serialize archive, which
torch.jit.load reads: submodule `net` with the weights, attribute `meta` with schema,
thresholds, input size and widths), rebuilds the network from its description, scores
the crops listed in --crops with the same preprocessing (area resize to the input size,
RGB, [-1, 1]) and the same group softmax, times it, and compares with the C++ scores.
Run by moeforge-tag-bench; standalone:
  /usr/bin/python3 bench/tag_reference.py --model M.pt --crops LIST [--threads 2]
"""
import argparse
import json
import time
import tomllib

import cv2
import numpy as np
import torch
from torch import nn


class TaggerNet(nn.Module):
    def __init__(self, num_tags, width, blocks, pool="avg"):
        super().__init__()
        self.pool = pool
        layers, cin, w = [], 3, width
        for b in range(blocks):
            layers += [nn.Conv2d(cin, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
                       nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
                       nn.MaxPool2d(2)]
            cin = w
            if b + 1 < blocks:
                w = min(w * 2, width * 8)
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(2 * cin if pool == "avgmax" else cin, num_tags)

    def forward(self, x):
        h = self.body(x)
        f = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1) if self.pool == "avgmax" else h.mean((2, 3))
        return self.head(self.drop(f))


def load(path):
    archive = torch.jit.load(path, map_location="cpu")
    meta = json.loads(archive.meta)
    schema = tomllib.loads(meta["schema_toml"])
    net = TaggerNet(len(meta["tags"]), meta["width"], meta["blocks"], meta.get("pool", "avg"))
    state = {k: v for k, v in archive.net.state_dict().items()}
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, meta, schema


def preprocess(images, size):
    out = np.empty((len(images), 3, size, size), np.float32)
    for i, img in enumerate(images):
        interp = cv2.INTER_AREA if img.shape[1] > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) * (2.0 / 255.0) - 1.0
        out[i] = rgb.transpose(2, 0, 1)
    return torch.from_numpy(out)


def probabilities(logits, schema):
    probs = torch.sigmoid(logits)
    col = 0
    for g in schema["group"]:
        n = len(g["tags"])
        if g.get("exclusive", False):
            probs[:, col:col + n] = torch.softmax(logits[:, col:col + n], 1)
        col += n
    return probs


def score(net, meta, schema, images, batch):
    rows = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = preprocess(images[i:i + batch], meta["input_size"])
            rows.append(probabilities(net(x), schema))
    return torch.cat(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--crops", required=True, help="file with one crop path per line")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--compare", help="C++ scores (JSON rows) to compare with")
    ap.add_argument("--out", help="write figures here as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net, meta, schema = load(a.model)
    paths = [l.strip() for l in open(a.crops) if l.strip()]
    # Decoded up front, as on the C++ side: the timing is resize + normalise + forward.
    images = [cv2.imread(p, cv2.IMREAD_COLOR) for p in paths]
    best, scores = 1e9, None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        scores = score(net, meta, schema, images, a.batch)
        best = min(best, time.perf_counter() - t0)
    res = {"torch": torch.__version__, "n": len(paths), "seconds": best, "faces_per_s": len(paths) / best,
           "threads": a.threads, "batch": a.batch}
    if a.compare:
        cpp = torch.tensor(json.load(open(a.compare)))
        res["max_abs_diff"] = float((cpp - scores).abs().max())
    print("Python PyTorch %s: %d faces in %.3f s = %.1f faces/s" % (torch.__version__, len(paths), best,
                                                                  res["faces_per_s"]))
    if a.out:
        json.dump(res, open(a.out, "w"))


if __name__ == "__main__":
    main()
