"""The default enhancement chain, whole image, with Pillow (the reference tile-enhance
is tested and benchmarked against): S-curve, gamma, brightness, contrast, autocontrast.

usage: pillow_chain.py IN OUT [steps...]
steps (default: curve gamma=0.9 brightness=1.03 contrast=1.05 autocontrast=1):
  curve | gamma=G | brightness=F | contrast=F | autocontrast=CUTOFF | levels=B,W,G
"""
import math
import sys

from PIL import Image, ImageEnhance, ImageOps

Image.MAX_IMAGE_PIXELS = None


def lut_curve():
    out = []
    for i in range(256):
        s = 255 * (0.5 - 0.5 * math.cos(math.pi * i / 255))
        if i < 64:
            s += 0.1 * (64 - i)
        if i > 128:
            w = (i - 128) / 127
            s = s * (1 - w) + i * w
        out.append(min(255, max(0, math.floor(s + 0.5))))
    return out


def lut_gamma(g):
    return [min(255, max(0, math.floor(255 * (i / 255) ** (1 / g) + 0.5))) for i in range(256)]


def lut_levels(b, w, g):
    out = []
    for i in range(256):
        t = min(1.0, max(0.0, (i - b) / (w - b)))
        out.append(min(255, max(0, math.floor(255 * t ** (1 / g) + 0.5))))
    return out


def point(im, lut):
    """A table on the colour bands; alpha left alone."""
    bands = im.getbands()
    if "A" in bands:
        parts = list(im.split())
        for k, b in enumerate(bands):
            if b != "A":
                parts[k] = parts[k].point(lut)
        return Image.merge(im.mode, parts)
    return im.point(lut * len(bands))


def run(im, steps):
    for s in steps:
        name, _, arg = s.partition("=")
        if name == "curve":
            im = point(im, lut_curve())
        elif name == "gamma":
            im = point(im, lut_gamma(float(arg)))
        elif name == "brightness":
            im = ImageEnhance.Brightness(im).enhance(float(arg))
        elif name == "contrast":
            im = ImageEnhance.Contrast(im).enhance(float(arg))
        elif name == "autocontrast":
            im = ImageOps.autocontrast(im, cutoff=float(arg))
        elif name == "levels":
            b, w, g = (float(v) for v in arg.split(","))
            im = point(im, lut_levels(b, w, g))
        else:
            raise SystemExit(f"unknown step {s}")
    return im


def main():
    src, dst = sys.argv[1], sys.argv[2]
    steps = sys.argv[3:] or ["curve", "gamma=0.9", "brightness=1.03", "contrast=1.05", "autocontrast=1"]
    im = Image.open(src)
    im.load()
    run(im, steps).save(dst)


if __name__ == "__main__":
    main()
