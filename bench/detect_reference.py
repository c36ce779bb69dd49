#!/usr/bin/python3
"""Python OpenCV reference for the detect stage's benchmark (moeforge-detect-bench runs it
in the same run, on the same images): the same steps as `moeforge detect` with its
defaults, written the way one would in Python.

  read file -> cv2.imdecode -> grey + equalizeHist -> lbpcascade detectMultiScale(1.1, 5,
  minSize 24) [-> with --detector cascade+yunet also YuNet through cv2.dnn at 640, decoded
  and NMS'd, boxes fused] -> calibrated box -> square crop with margin, edge-padded, limit
  on padding -> INTER_AREA resize -> PNG encode -> write (tmp + rename) -> one sqlite row
  per face, one per image, committed every 256 images.

Prints one JSON line: {"images": N, "faces": F, "seconds": S, "images_per_s": R}.

  /usr/bin/python3 bench/detect_reference.py --images DIR --out DIR [--models DIR]
                                            [--detector cascade|cascade+yunet]
"""
import argparse
import json
import math
import os
import sqlite3
import time

import cv2
import numpy as np

# detector/backends.cpp DefaultCalibration() and DetectOptions' defaults.
CAL = {"cascade": (-0.009, -0.161, 0.864, 0.917), "yunet": (-0.030, -0.235, 1.278, 1.164)}
MARGIN, MAX_PAD, MIN_FACE, CROP = 0.35, 0.3, 24, 128
YUNET_SIZE, YUNET_SCORE, YUNET_NMS = 640, 0.6, 0.3


def crop_square(x, y, w, h):
    side = max(w, h) * (1 + 2 * MARGIN)
    cx = x + w / 2
    cy = y + h / 2 - min(0.1, MARGIN / 2) * h
    return cx - side / 2, cy - side / 2, side


def calibrate(kind, x, y, w, h):
    dx, dy, sw, sh = CAL[kind]
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    return (cx - sw * w / 2, cy - sh * h / 2, sw * w, sh * h)


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    uni = a[2] * a[3] + b[2] * b[3] - inter
    return inter / uni if uni > 0 else 0.0


def contains(r, px, py):
    return r[0] <= px < r[0] + r[2] and r[1] <= py < r[1] + r[3]


def same_face(a, b):
    if iou(a, b) > 0.3:
        return True
    ratio = a[2] / b[2]
    if ratio < 0.6 or ratio > 1.6:
        return False
    return contains(a, b[0] + b[2] / 2, b[1] + b[3] / 2) and contains(b, a[0] + a[2] / 2, a[1] + a[3] / 2)


def cascade_faces(cascade, img):
    grey = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    dets, neighbours = cascade.detectMultiScale2(grey, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    return [(calibrate("cascade", *map(float, d)), 1 - math.exp(-n / 10.0)) for d, n in zip(dets, neighbours)]


def yunet_faces(net, img):
    h0, w0 = img.shape[:2]
    s = YUNET_SIZE / max(w0, h0)
    w, h = max(1, int(round(w0 * s))), max(1, int(round(h0 * s)))
    resized = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    cw, ch = (w + 31) // 32 * 32, (h + 31) // 32 * 32
    canvas = np.zeros((ch, cw, 3), np.uint8)
    canvas[:h, :w] = resized
    net.setInput(cv2.dnn.blobFromImage(canvas))
    names = ["%s_%d" % (p, st) for st in (8, 16, 32) for p in ("cls", "obj", "bbox")]
    outs = dict(zip(names, net.forward(names)))
    boxes = []
    for st in (8, 16, 32):
        cols, rows = cw // st, ch // st
        cls = outs["cls_%d" % st].reshape(-1)
        obj = outs["obj_%d" % st].reshape(-1)
        bb = outs["bbox_%d" % st].reshape(-1, 4)
        score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
        for i in np.nonzero(score >= YUNET_SCORE)[0]:
            r, c = divmod(int(i), cols)
            cx, cy = (c + bb[i, 0]) * st, (r + bb[i, 1]) * st
            bw, bh = math.exp(bb[i, 2]) * st, math.exp(bb[i, 3]) * st
            boxes.append(((cx - bw / 2) / s, (cy - bh / 2) / s, bw / s, bh / s, float(score[i])))
    boxes.sort(key=lambda b: -b[4])
    kept = []
    for b in boxes:
        if all(iou(b[:4], k[:4]) <= YUNET_NMS for k in kept):
            kept.append(b)
    return [(calibrate("yunet", *b[:4]), b[4]) for b in kept]


def fuse(faces):
    faces = sorted(faces, key=lambda f: -f[1])
    clusters = []
    for f in faces:
        for c in clusters:
            if same_face(c[0][0], f[0]):
                c.append(f)
                break
        else:
            clusters.append([f])
    out = []
    for c in clusters:
        sw = sum(s for _, s in c)
        box = tuple(sum(s * b[k] for b, s in c) / sw for k in range(4))
        out.append((box, 1 - float(np.prod([1 - s for _, s in c]))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=os.environ.get("MOEFORGE_MODEL_PATH", ".").split(":")[0])
    ap.add_argument("--detector", default="cascade+yunet", choices=["cascade", "cascade+yunet"])
    args = ap.parse_args()
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images))
    os.makedirs(args.out, exist_ok=True)
    cascade = cv2.CascadeClassifier(os.path.join(args.models, "lbpcascade_animeface.xml"))
    if cascade.empty():
        raise SystemExit("cannot load lbpcascade_animeface.xml from " + args.models)
    yunet = None
    if args.detector == "cascade+yunet":
        yunet = cv2.dnn.readNetFromONNX(os.path.join(args.models, "face_detection_yunet_2026may.onnx"))
    db = sqlite3.connect(os.path.join(args.out, "reference.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS faces(image TEXT, idx INT, x REAL, y REAL, w REAL, h REAL, path TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS done(image TEXT PRIMARY KEY, n INT)")
    t0 = time.perf_counter()
    faces_total = 0
    for i, path in enumerate(files):
        with open(path, "rb") as f:
            data = f.read()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        name = os.path.basename(path)
        if img is None:
            db.execute("INSERT OR REPLACE INTO done VALUES(?, ?)", (name, -1))
            continue
        faces = cascade_faces(cascade, img)
        if yunet is not None:
            faces = fuse(faces + yunet_faces(yunet, img))
        faces = sorted((f for f in faces if f[0][2] >= MIN_FACE), key=lambda f: -f[1])
        n = 0
        for (x, y, w, h), score in faces:
            sx, sy, side = crop_square(x, y, w, h)
            x0, y0, s = int(round(sx)), int(round(sy)), max(1, int(round(side)))
            ix0, iy0 = max(0, x0), max(0, y0)
            ix1, iy1 = min(img.shape[1], x0 + s), min(img.shape[0], y0 + s)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            pad = 1 - (ix1 - ix0) * (iy1 - iy0) / (s * s)
            if pad > MAX_PAD:
                continue
            sq = cv2.copyMakeBorder(img[iy0:iy1, ix0:ix1], iy0 - y0, y0 + s - iy1, ix0 - x0, x0 + s - ix1,
                                    cv2.BORDER_REPLICATE)
            out = cv2.resize(sq, (CROP, CROP), interpolation=cv2.INTER_AREA)
            ok, png = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 3])
            dest = os.path.join(args.out, "%s_%d.png" % (name, n))
            with open(dest + ".tmp", "wb") as f:
                f.write(png.tobytes())
            os.replace(dest + ".tmp", dest)
            db.execute("INSERT INTO faces VALUES(?,?,?,?,?,?,?)", (name, n, x, y, w, h, dest))
            n += 1
        db.execute("INSERT OR REPLACE INTO done VALUES(?, ?)", (name, n))
        faces_total += n
        if i % 256 == 255:
            db.commit()
    db.commit()
    secs = time.perf_counter() - t0
    print(json.dumps({"images": len(files), "faces": faces_total, "seconds": round(secs, 4),
                      "images_per_s": round(len(files) / secs, 3), "detector": args.detector, "opencv": cv2.__version__,
                      "opencv_threads": cv2.getNumThreads()}))


if __name__ == "__main__":
    main()
