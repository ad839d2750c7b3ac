"""The card face's images, drawn deterministically from the holder's data with Pillow.

The real card-face AP holds the name and address as PNG images of the printed text, the face
photo as JPEG 2000 and the security code as PNG (jsapdu's ``schemaKenkakuEntries``). The emulator
ships no Japanese font, so (choice) each character is drawn as a glyph-like pattern of strokes
derived from SHA-256 of the character: the same text always gives the same image, different text
a different one, and the files have the size and shape of the real ones. The photo is a
synthetic head-and-shoulders picture, one of a small set picked by a hash of the My Number
(JPEG 2000 encoding costs ~20 ms a photo, a sixth of a conformance run's time for its 16: each is
rendered once and kept in the cache folder, ``$MYNAHIL_CACHE``, for every later process).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
from dataclasses import dataclass
from functools import lru_cache

import PIL
from PIL import Image, ImageDraw

from mynahil.files import write_atomically
from mynahil.paths import cache_dir

from .state import Holder, Sex

__all__ = ["FaceImages", "face_images", "render_text_png"]

_GRID = 6  # strokes per glyph side
_PHOTO_VARIANTS = 8
_PHOTO_SIZE = (240, 320)  # width, height in pixels
_PHOTO_RATE = 24  # JPEG 2000 compression ratio: ~8 KB for 240x320 colour


@dataclass(frozen=True, slots=True)
class FaceImages:
    name_png: bytes
    address_png: bytes
    photo_jp2: bytes
    security_code_png: bytes
    my_number_png: bytes


@lru_cache(maxsize=4096)
def _glyph(ch: str, size: int) -> Image.Image:
    bits = hashlib.sha256(ch.encode("utf-8")).digest()
    cell = size // _GRID
    glyph = Image.new("L", (size, size), 255)
    draw = ImageDraw.Draw(glyph)
    for i in range(_GRID * _GRID):
        if bits[i // 8] >> (i % 8) & 1:
            cx, cy = (i % _GRID) * cell, (i // _GRID) * cell
            shade = 40 + bits[(i + 5) % 32] % 80  # grey strokes, as anti-aliased print looks
            draw.rectangle((cx, cy, cx + cell - 2, cy + cell - 2), fill=shade)
    return glyph


def render_text_png(text: str, *, size: int = 30, per_line: int = 16) -> bytes:
    """``text`` as a greyscale PNG, ``per_line`` characters a line."""
    lines = [text[i : i + per_line] for i in range(0, len(text), per_line)] or [""]
    width = 8 + size * max(len(line) for line in lines)
    height = 8 + (size + 4) * len(lines)
    image = Image.new("L", (max(width, 16), height), 255)
    for row, line in enumerate(lines):
        for col, ch in enumerate(line):
            if not ch.isspace():
                image.paste(_glyph(ch, size), (4 + col * size, 4 + row * (size + 4)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"


@lru_cache(maxsize=2 * _PHOTO_VARIANTS)
def _photo(variant: int, female: bool) -> bytes:
    """The photo, from the cache folder when an earlier process rendered it. The file's name
    hashes the drawing code, the size, the rate and Pillow's version, so a change to any of
    them renders it afresh."""
    drawing = _draw_photo.__code__
    recipe = (drawing.co_code, drawing.co_consts, _PHOTO_SIZE, _PHOTO_RATE, PIL.__version__)
    key = hashlib.sha256(repr((*recipe, variant, female)).encode()).hexdigest()[:20]
    path = cache_dir() / "face-photos" / f"{key}.jp2"
    with contextlib.suppress(OSError):
        kept = path.read_bytes()
        if kept.startswith(_JP2_SIGNATURE):  # else torn or foreign: render it again
            return kept
    photo = _draw_photo(variant, female)
    # A cache folder that cannot be written only costs the reuse.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, photo)
    return photo


def _draw_photo(variant: int, female: bool) -> bytes:
    rng = random.Random(variant * 2 + int(female))
    w, h = _PHOTO_SIZE
    image = Image.new("RGB", (w, h), (200 + rng.randrange(40), 210 + rng.randrange(40), 230))
    draw = ImageDraw.Draw(image)
    skin = (200 + rng.randrange(40), 160 + rng.randrange(40), 130 + rng.randrange(40))
    hair = (rng.randrange(60), rng.randrange(50), rng.randrange(40))
    draw.ellipse((w * 0.2, h * 0.08, w * 0.8, h * 0.5), fill=hair)
    if female:
        draw.rectangle((w * 0.2, h * 0.25, w * 0.8, h * 0.65), fill=hair)
    draw.ellipse((w * 0.27, h * 0.16, w * 0.73, h * 0.6), fill=skin)
    for ex in (0.38, 0.62):
        draw.ellipse((w * ex - 8, h * 0.33, w * ex + 8, h * 0.37), fill=(40, 30, 30))
    draw.arc((w * 0.4, h * 0.44, w * 0.6, h * 0.52), 20, 160, fill=(150, 60, 60), width=3)
    suit = (rng.randrange(80), rng.randrange(80), 60 + rng.randrange(80))
    draw.rectangle((w * 0.1, h * 0.66, w * 0.9, h), fill=suit)
    draw.polygon(((w * 0.4, h * 0.66), (w * 0.6, h * 0.66), (w * 0.5, h * 0.8)), fill=(250,) * 3)
    for _ in range(2000):  # a little texture, as a photograph has
        x, y = rng.randrange(w), rng.randrange(h)
        r, g, b = image.getpixel((x, y))  # type: ignore[misc]
        d = rng.randrange(-12, 13)
        image.putpixel((x, y), (r + d, g + d, b + d))
    out = io.BytesIO()
    image.save(
        out, "JPEG2000", quality_mode="rates", quality_layers=[_PHOTO_RATE], irreversible=True
    )
    return out.getvalue()


def face_images(holder: Holder, security_code: str) -> FaceImages:
    """The images of ``holder``'s card face (deterministic)."""
    pick = hashlib.sha256(holder.my_number.encode("ascii")).digest()[0] % _PHOTO_VARIANTS
    return FaceImages(
        name_png=render_text_png(holder.name),
        address_png=render_text_png(holder.address, size=26, per_line=20),
        photo_jp2=_photo(pick, holder.sex is Sex.FEMALE),
        security_code_png=render_text_png(security_code, size=24),
        my_number_png=render_text_png(holder.my_number, size=24),
    )
