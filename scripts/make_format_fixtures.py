#!/usr/bin/python3
"""Writes the image-format fixtures of tests/fixtures/formats/ (standard library only).

usage: scripts/make_format_fixtures.py [OUT_DIR]   (default: tests/fixtures/formats)

  animated.gif  GIF89a, logical screen 20x16, two frames. Frame 1: 16x12 at (2,2),
                interlaced, row y coloured red/green/blue by y % 3, its pixel (0,0)
                transparent (Graphic Control Extension index 3). Frame 2: the whole
                screen black. A first-frame decoder gives white outside (2,2)-(17,13).
  apng.png      APNG 16x12: acTL (2 frames), the default image IDAT red (with fcTL 0:
                it is frame 1), frame 2 an fdAT of blue. libpng reads the red default image.
  header.avif   the first boxes of an AVIF file (ftyp avif/mif1/miaf, an empty meta box),
                no image data: enough to be recognised as AVIF by its magic bytes, which
                is all moeforge does with AVIF (no decoder in this build).
"""
import os
import struct
import sys
import zlib


def lzw_literal(indices, min_size):
    """GIF LZW data that sends every pixel as a literal code, with a clear code every
    four pixels, so the decoder's table never grows past 4-bit codes."""
    clear, eoi = 1 << min_size, (1 << min_size) + 1
    width = min_size + 1
    codes = []
    for i, v in enumerate(indices):
        if i % 4 == 0:
            codes.append(clear)
        codes.append(v)
    codes.append(eoi)
    acc = bits = 0
    out = bytearray()
    for c in codes:
        acc |= c << bits
        bits += width
        while bits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            bits -= 8
    if bits:
        out.append(acc & 0xFF)
    return bytes(out)


def sub_blocks(data):
    return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)) + b"\x00"


def gif():
    # Palette of 8: red green blue transparent-slot(magenta) black white grey grey.
    pal = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 255), (0, 0, 0), (255, 255, 255), (128, 128, 128),
           (64, 64, 64)]
    out = b"GIF89a" + struct.pack("<HHBBB", 20, 16, 0xF2, 5, 0)  # global table of 8, background white
    out += b"".join(bytes(c) for c in pal)
    out += b"!\xFF\x0BNETSCAPE2.0\x03\x01\x00\x00\x00"  # loop forever: an animation
    # Frame 1: transparent index 3, interlaced, rows in interlace order.
    out += b"!\xF9\x04" + struct.pack("<BHB", 0x01, 10, 3) + b"\x00"
    w, h = 16, 12
    rows = {y: [y % 3] * w for y in range(h)}
    rows[0][0] = 3
    order = [y for start, step in ((0, 8), (4, 8), (2, 4), (1, 2)) for y in range(start, h, step)]
    pixels = [v for y in order for v in rows[y]]
    out += b"," + struct.pack("<HHHHB", 2, 2, w, h, 0x40) + b"\x03" + sub_blocks(lzw_literal(pixels, 3))
    # Frame 2: the whole screen black.
    out += b"!\xF9\x04" + struct.pack("<BHB", 0x00, 10, 0) + b"\x00"
    out += b"," + struct.pack("<HHHHB", 0, 0, 20, 16, 0) + b"\x03" + sub_blocks(lzw_literal([4] * 320, 3))
    return out + b";"


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def apng():
    w, h = 16, 12

    def solid(r, g, b):
        return zlib.compress(b"".join(b"\x00" + bytes([r, g, b]) * w for _ in range(h)))

    def fctl(seq):
        return chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    out += chunk(b"acTL", struct.pack(">II", 2, 0))
    out += fctl(0) + chunk(b"IDAT", solid(255, 0, 0))
    out += fctl(1) + chunk(b"fdAT", struct.pack(">I", 2) + solid(0, 0, 255))
    return out + chunk(b"IEND", b"")


def avif_header():
    ftyp = b"ftyp" + b"avif" + struct.pack(">I", 0) + b"avif" + b"mif1" + b"miaf"
    meta = b"meta" + struct.pack(">I", 0)  # full box, version 0, no children
    return struct.pack(">I", 4 + len(ftyp)) + ftyp + struct.pack(">I", 4 + len(meta)) + meta


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                             "formats")
    os.makedirs(out, exist_ok=True)
    for name, data in (("animated.gif", gif()), ("apng.png", apng()), ("header.avif", avif_header())):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
