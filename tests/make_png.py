#!/usr/bin/env python3
"""Test fixture: writes a small solid-colour RGB PNG. usage: make_png.py PATH W H R G B"""
import struct
import sys
import zlib

path, w, h, r, g, b = sys.argv[1], *map(int, sys.argv[2:7])


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


raw = b"".join(b"\x00" + bytes([r, g, b]) * w for _ in range(h))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(path, "wb").write(png)
