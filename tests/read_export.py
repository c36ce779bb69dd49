#!/usr/bin/env python3
"""An independent reader of `moeforge export` output, for tests: standard library only
(zipfile, tarfile, json, zlib), sharing nothing with exporter/.

usage: read_export.py OUT FORMAT
Prints one JSON object:
  {"samples": [{"key", "tags", "label", "class", "png": {"ok", "width", "height", "error"}}...],
   "order": [keys in the order the format lists them], "files": [every file under OUT]}
A PNG is "ok" when its signature, IHDR and CRCs are right and its IDAT stream inflates to
exactly the bytes its size and colour type call for.
"""
import json
import os
import sys
import tarfile
import zipfile
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def check_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return {"ok": False, "error": "no PNG signature"}
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        if pos + 8 > len(data):
            return {"ok": False, "error": "truncated chunk header"}
        n = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        crc = int.from_bytes(data[pos + 8 + n:pos + 12 + n], "big")
        if len(body) != n or zlib.crc32(kind + body) != crc:
            return {"ok": False, "error": "bad chunk %r" % kind}
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + n
    if ihdr is None:
        return {"ok": False, "error": "no IHDR"}
    w, h = int.from_bytes(ihdr[0:4], "big"), int.from_bytes(ihdr[4:8], "big")
    depth, ctype, interlace = ihdr[8], ihdr[9], ihdr[12]
    try:
        raw = zlib.decompress(idat)
    except zlib.error as e:
        return {"ok": False, "error": "IDAT: %s" % e}
    if interlace == 0:
        row = (w * CHANNELS.get(ctype, 0) * depth + 7) // 8
        if len(raw) != h * (1 + row):
            return {"ok": False, "error": "IDAT holds %d bytes, %dx%d needs %d" % (len(raw), w, h, h * (1 + row))}
    return {"ok": True, "width": w, "height": h}


def main():
    out, fmt = sys.argv[1], sys.argv[2]
    samples, order = {}, []

    def sample(key):
        if key not in samples:
            samples[key] = {"key": key}
            order.append(key)
        return samples[key]

    files = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    if fmt == "imagefolder":
        for rel in files:
            if rel.endswith(".png"):
                cls, name = rel.split(os.sep)
                s = sample(name[:-4])
                s["class"] = cls
                s["png"] = check_png(open(os.path.join(out, rel), "rb").read())
    elif fmt == "captions":
        for rel in files:
            key, ext = os.path.splitext(rel)
            if ext == ".png":
                sample(key)["png"] = check_png(open(os.path.join(out, rel), "rb").read())
            elif ext == ".txt":
                text = open(os.path.join(out, rel), encoding="utf-8").read()
                sample(key)["tags"] = [t for t in text.strip().split(", ") if t]
    elif fmt == "stylegan":
        with zipfile.ZipFile(os.path.join(out, "dataset.zip")) as z:
            if z.testzip() is not None:
                raise SystemExit("bad CRC in dataset.zip")
            meta = json.loads(z.read("dataset.json"))
            for name, label in meta["labels"]:
                key = name.split("/img")[1][:-4]
                s = sample(key)
                s["label"] = label
                s["png"] = check_png(z.read(name))
            pngs = [n for n in z.namelist() if n.endswith(".png")]
            if len(pngs) != len(meta["labels"]):
                raise SystemExit("%d images, %d labels" % (len(pngs), len(meta["labels"])))
    elif fmt == "webdataset":
        for rel in files:
            if not rel.endswith(".tar"):
                continue
            with tarfile.open(os.path.join(out, rel)) as t:
                for m in t.getmembers():
                    key, ext = m.name.rsplit(".", 1)
                    data = t.extractfile(m).read()
                    s = sample(key)
                    if ext == "png":
                        s["png"] = check_png(data)
                    elif ext == "txt":
                        s["tags"] = [x for x in data.decode().split(", ") if x]
                    elif ext == "json":
                        j = json.loads(data)
                        s["label"] = j["tag_vector"]
                        s["json_tags"] = j["tags"]
                        s["face_id"] = j["face_id"]
    else:
        raise SystemExit("unknown format " + fmt)
    print(json.dumps({"samples": [samples[k] for k in order], "order": order, "files": files}))


if __name__ == "__main__":
    main()
