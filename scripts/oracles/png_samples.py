"""Writes small PNGs of every colour type and bit depth (and broken files) to Tests/Fixtures/images,
with the RGB each pixel must decode to in expected.json (transparent pixels: white, the background
our reader composites onto). Pure Python (zlib + struct). Run: python3 scripts/oracles/png_samples.py
"""
import json, struct, zlib, os

OUT = "Tests/Fixtures/images"
W, H = 4, 3

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

def png(path, color_type, depth, rows, plte=None, trns=None, srgb=False):
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, depth, color_type, 0, 0, 0))
    if srgb: data += chunk(b"sRGB", b"\x00")
    if plte: data += chunk(b"PLTE", plte)
    if trns is not None: data += chunk(b"tRNS", trns)
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(OUT, path), "wb").write(data)
    return data

def pack(values, depth):
    if depth == 16: return b"".join(struct.pack(">H", v) for v in values)
    if depth == 8: return bytes(values)
    bits = "".join(format(v, "0%db" % depth) for v in values)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))

expected = {}
gray = [[(x * 60 + y * 17) % 256 for x in range(W)] for y in range(H)]
rgb = [[((x * 60) % 256, (y * 90) % 256, (x * 30 + y * 40) % 256) for x in range(W)] for y in range(H)]

png("gray8.png", 0, 8, [pack(r, 8) for r in gray])
expected["gray8.png"] = [[v, v, v] for r in gray for v in r]
png("gray16.png", 0, 16, [pack([v * 257 for v in r], 16) for r in gray], srgb=True)
expected["gray16.png"] = expected["gray8.png"]
png("gray1.png", 0, 1, [pack([(x + y) % 2 for x in range(W)], 1) for y in range(H)])
expected["gray1.png"] = [[255 * ((x + y) % 2)] * 3 for y in range(H) for x in range(W)]
png("rgb8.png", 2, 8, [pack([c for p in r for c in p], 8) for r in rgb])
expected["rgb8.png"] = [list(p) for r in rgb for p in r]
png("rgb16.png", 2, 16, [pack([c * 257 for p in r for c in p], 16) for r in rgb], srgb=True)
expected["rgb16.png"] = expected["rgb8.png"]
palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 20, 30)]
idx = [[(x + 2 * y) % 4 for x in range(W)] for y in range(H)]
plte = b"".join(bytes(c) for c in palette)
png("palette8.png", 3, 8, [pack(r, 8) for r in idx], plte=plte)
expected["palette8.png"] = [list(palette[i]) for r in idx for i in r]
png("palette4.png", 3, 4, [pack(r, 4) for r in idx], plte=plte)
expected["palette4.png"] = expected["palette8.png"]
# palette entry 3 fully transparent -> white
png("palette_trns.png", 3, 8, [pack(r, 8) for r in idx], plte=plte, trns=bytes([255, 255, 255, 0]))
expected["palette_trns.png"] = [list(palette[i]) if i != 3 else [255, 255, 255] for r in idx for i in r]
alpha = [[255 if (x + y) % 3 else 0 for x in range(W)] for y in range(H)]  # opaque or fully transparent
png("graya8.png", 4, 8, [pack([c for x in range(W) for c in (gray[y][x], alpha[y][x])], 8) for y in range(H)])
expected["graya8.png"] = [[gray[y][x]] * 3 if alpha[y][x] else [255, 255, 255] for y in range(H) for x in range(W)]
png("rgba8.png", 6, 8, [pack([c for x in range(W) for c in rgb[y][x] + (alpha[y][x],)], 8) for y in range(H)])
expected["rgba8.png"] = [list(rgb[y][x]) if alpha[y][x] else [255, 255, 255] for y in range(H) for x in range(W)]
data = png("rgba16.png", 6, 16, [pack([c * 257 for x in range(W) for c in rgb[y][x] + (alpha[y][x],)], 16) for y in range(H)], srgb=True)
expected["rgba16.png"] = expected["rgba8.png"]
# Broken files: truncated in the image data, a bad CRC, garbage.
open(os.path.join(OUT, "truncated.png"), "wb").write(data[:len(data) - 30])
bad = bytearray(open(os.path.join(OUT, "rgb8.png"), "rb").read()); bad[-20] ^= 0xFF
open(os.path.join(OUT, "badcrc.png"), "wb").write(bytes(bad))
open(os.path.join(OUT, "garbage.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
open(os.path.join(OUT, "not_an_image.png"), "wb").write(b"hello, world\n")
json.dump({"width": W, "height": H, "pixels": expected}, open(os.path.join(OUT, "expected.json"), "w"), indent=0)
print("wrote", len(expected), "images")
