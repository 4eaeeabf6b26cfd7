"""Synthetic licence-plate camera frames, deterministic by seed.

Each frame is a 128x256 RGB view of a parking-lot-like scene: asphalt texture with painted bay lines, clutter
(bollards, signs with small text, blobs), the back of a car, and ONE plate at a random position, scale, small
rotation and perspective, then lighting (gain, gamma, shadow ramp, colour cast), blur and sensor noise.

Why 128x256 RGB: the raw frame is 96 KiB (262 ms at 3 Mbit/s), so shipping it dominates CLOUD-ONLY latency and a
split after the backbone pays off, while the backbone still trains in a few minutes on 2 CPU cores. RGB because
that is what a camera pipeline hands over and what the edge app reads (PPM).

The plate format (2 letters, 3 digits, 2 letters, printed "AB-123-CD", no I/O/U) and the label encoding are in
`plate`. The plate is white with a blue band on the left, as on French SIV plates.

Frame `i` of a split depends only on (seed, i): splits are train = seed 0, val = seed 1, test = seed 2.
"""

from __future__ import annotations

import math
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from splitsdk.examples.lpr.plate import (
    ALPHABET,
    BLANK,
    DIGITS,
    LETTERS,
    NUM_CLASSES,
    PLATE_LEN,
    encode,
    format_plate,
    is_valid_plate,
    labels_to_text,
    random_plate,
)

__all__ = [
    "ALPHABET", "BLANK", "CHANNELS", "DIGITS", "HEIGHT", "LETTERS", "NUM_CLASSES", "PLATE_LEN", "SPLITS", "WIDTH",
    "encode", "format_plate", "generate", "is_valid_plate", "labels_to_text", "ppm_bytes", "random_plate",
    "render_annotated", "render_frame", "render_plate", "write_frames", "write_npz", "generate_annotated",
]

HEIGHT, WIDTH, CHANNELS = 128, 256, 3
SPLITS = {"train": 0, "val": 1, "test": 2}
FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
CLUTTER_FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
_PLATE_FONT_SIZE = 48  # the plate is drawn large, then warped down into the frame


@lru_cache(maxsize=4)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _rgb(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    r, g, b = rng.integers(lo, hi, size=3)
    return int(r), int(g), int(b)


def render_plate(text: str, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """The plate face, front-on and large (RGBA: white or worn-cream plate, black border, blue band), and the
    centres of its 7 characters in plate pixels ((7, 2) x, y)."""
    font = _font(FONT_PATH, _PLATE_FONT_SIZE)
    printed = format_plate(text)
    left, top, right, bottom = (int(v) for v in font.getbbox(printed))
    band, pad_x, pad_y = 26, 12, 10
    w, h = band + pad_x * 2 + (right - left), pad_y * 2 + (bottom - top)
    shade = int(rng.integers(215, 256))
    plate = Image.new("RGBA", (w, h), (shade, shade, int(shade * rng.uniform(0.85, 1.0)), 255))
    draw = ImageDraw.Draw(plate)
    draw.rectangle((0, 0, band, h - 1), fill=(0, 51, 153, 255))
    draw.rectangle((0, 0, w - 1, h - 1), outline=(20, 20, 20, 255), width=3)
    ink = int(rng.integers(0, 50))
    draw.text((band + pad_x - left, pad_y - top), printed, font=font, fill=(ink, ink, ink, 255))
    advance = font.getlength("0")  # monospace
    centres = [(band + pad_x - left + advance * (k + 0.5), h / 2) for k, c in enumerate(printed) if c != "-"]
    return plate, np.array(centres, dtype=np.float64)


def _apply_perspective(coeffs: tuple[float, ...], points: np.ndarray) -> np.ndarray:
    a, b, c, d, e, f, g, h = coeffs
    x, y = points[:, 0], points[:, 1]
    den = g * x + h * y + 1.0
    return np.stack([(a * x + b * y + c) / den, (d * x + e * y + f) / den], axis=1)


def _perspective_coeffs(dst: np.ndarray, src: np.ndarray) -> tuple[float, ...]:
    """PIL's 8 PERSPECTIVE coefficients mapping output points `dst` back to input points `src` (4x2 each)."""
    rows = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    sol = np.linalg.solve(np.array(rows, dtype=np.float64), src.reshape(-1).astype(np.float64))
    return tuple(float(c) for c in sol)


def _plate_corners(rng: np.random.Generator, aspect: float) -> np.ndarray:
    """Where the plate's 4 corners land in the frame: random scale, position, rotation, perspective."""
    w = rng.uniform(0.38, 0.6) * WIDTH
    h = w / aspect
    cx = rng.uniform(w / 2 + 6, WIDTH - w / 2 - 6)
    cy = rng.uniform(h / 2 + 8, HEIGHT - h / 2 - 8)
    angle = math.radians(rng.uniform(-6.0, 6.0))
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    base += rng.uniform(-0.03, 0.03, size=(4, 2)) * np.array([w, w])  # perspective: each corner moves a little
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.asarray(base @ rot.T + np.array([cx, cy]))


def _background(rng: np.random.Generator) -> Image.Image:
    """Asphalt: a base grey, low-frequency blotches, grain, and painted bay lines."""
    base = rng.uniform(55, 165)
    low = rng.normal(0, 18, size=(8, 16)).astype(np.float32)
    low_img = np.asarray(Image.fromarray(low, mode="F").resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC))
    grain = rng.normal(0, 9, size=(HEIGHT, WIDTH)).astype(np.float32)
    tint = rng.uniform(0.92, 1.08, size=3).astype(np.float32)
    rgb = (base + low_img + grain)[..., None] * tint
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(img)
    paint = (235, 235, 225) if rng.random() < 0.7 else (220, 190, 40)
    for _ in range(int(rng.integers(1, 4))):
        x0 = float(rng.uniform(-40, WIDTH + 40))
        draw.line((x0, 0, x0 + float(rng.uniform(-60, 60)), HEIGHT), fill=paint, width=int(rng.integers(2, 5)))
    return img


def _clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """Bollards, blobs, kerbs and small signs with short text (the reader must ignore them)."""
    for _ in range(int(rng.integers(2, 7))):
        kind = rng.integers(0, 4)
        x, y = float(rng.uniform(-20, WIDTH)), float(rng.uniform(-20, HEIGHT))
        s = float(rng.uniform(6, 40))
        if kind == 0:
            draw.ellipse((x, y, x + s, y + s * rng.uniform(0.5, 1.5)), fill=_rgb(rng))
        elif kind == 1:
            draw.rectangle((x, y, x + s * 0.3, y + s * 2), fill=_rgb(rng, 0, 120))  # bollard / pole
        elif kind == 2:
            draw.line((x, y, x + float(rng.uniform(-80, 80)), y + float(rng.uniform(-20, 20))),
                      fill=_rgb(rng), width=int(rng.integers(1, 4)))
        else:
            font = _font(CLUTTER_FONT_PATH, int(rng.integers(7, 11)))
            word = "".join(str(c) for c in rng.choice(list(ALPHABET), size=int(rng.integers(1, 5))))
            box = draw.textbbox((x, y), word, font=font)
            draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=_rgb(rng, 120, 256))
            draw.text((x, y), word, font=font, fill=_rgb(rng, 0, 100))


def _car(draw: ImageDraw.ImageDraw, rng: np.random.Generator, corners: np.ndarray) -> None:
    """The back of a car around the plate: body, rear window, tail lights, bumper, wheels and shadow."""
    x0, y0 = corners.min(axis=0)
    x1, y1 = corners.max(axis=0)
    pw, ph, cx = x1 - x0, y1 - y0, (x0 + x1) / 2
    half = pw * rng.uniform(1.05, 1.45)
    top, bottom = y0 - ph * rng.uniform(1.8, 3.0), y1 + ph * rng.uniform(0.5, 1.0)
    draw.rectangle((cx - half * 0.95, bottom - ph * 0.2, cx + half * 0.95, bottom + ph * 0.6), fill=(25, 25, 25))
    body = _rgb(rng)
    draw.rounded_rectangle((cx - half, top, cx + half, bottom), radius=float(ph * 0.8), fill=body)
    window = top + (y0 - top) * rng.uniform(0.15, 0.3)
    draw.polygon([(cx - half * 0.75, window + ph), (cx + half * 0.75, window + ph), (cx + half * 0.6, window),
                  (cx - half * 0.6, window)], fill=_rgb(rng, 10, 70))
    for side in (-1, 1):
        lx = cx + side * half * 0.78
        draw.rectangle((lx - half * 0.14, y0 - ph * 1.2, lx + half * 0.14, y0 - ph * 0.4), fill=(190, 20, 20))
        draw.rectangle((cx + side * half * 0.8 - pw * 0.12, bottom - ph * 0.1, cx + side * half * 0.8 + pw * 0.12,
                        bottom + ph * 0.7), fill=(15, 15, 15))
    draw.rectangle((cx - half, y1 + ph * 0.15, cx + half, y1 + ph * 0.45), fill=tuple(int(c * 0.6) for c in body))


def _lighting(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain, gamma, colour cast and a shadow ramp in a random direction (float in [0, 1])."""
    x = rgb.astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx / WIDTH - 0.5) * math.cos(theta) + (yy / HEIGHT - 0.5) * math.sin(theta)
    x = x * (1.0 + rng.uniform(-0.35, 0.35) * ramp)[..., None]
    x = x * rng.uniform(0.92, 1.08, size=3).astype(np.float32) * rng.uniform(0.55, 1.25)
    return np.asarray(np.clip(x, 0, 1) ** rng.uniform(0.75, 1.35))


def render_frame(seed: int, index: int) -> tuple[np.ndarray, str]:
    """Frame `index` of split `seed`: (uint8 HxWx3 image, plate string). Depends only on (seed, index)."""
    frame, text, _ = render_annotated(seed, index)
    return frame, text


def render_annotated(seed: int, index: int) -> tuple[np.ndarray, str, np.ndarray]:
    """`render_frame` plus where the 7 characters' centres land in the frame ((7, 2) x, y pixels)."""
    rng = np.random.default_rng([seed, index])
    text = random_plate(rng)
    img = _background(rng)
    draw = ImageDraw.Draw(img)
    _clutter(draw, rng)
    plate, centres = render_plate(text, rng)
    corners = _plate_corners(rng, plate.width / plate.height)
    _car(draw, rng, corners)
    src = np.array([[0, 0], [plate.width, 0], [plate.width, plate.height], [0, plate.height]], dtype=np.float64)
    warped = plate.transform((WIDTH, HEIGHT), Image.Transform.PERSPECTIVE, _perspective_coeffs(corners, src),
                             resample=Image.Resampling.BICUBIC)
    img.paste(warped, (0, 0), warped)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.1))))
    x = _lighting(np.asarray(img), rng) * 255.0
    x = x + rng.normal(0, rng.uniform(0.0, 8.0), size=x.shape)
    frame_centres = _apply_perspective(_perspective_coeffs(src, corners), centres)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), text, frame_centres.astype(np.float32)


def generate(seed: int, count: int, start: int = 0) -> tuple[np.ndarray, list[str]]:
    """Frames start..start+count-1 of split `seed`: (uint8 (N, H, W, 3), plate strings)."""
    frames, texts, _ = generate_annotated(seed, count, start)
    return frames, texts


def generate_annotated(seed: int, count: int, start: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`generate` plus the characters' centres in the frame ((N, 7, 2) float32 x, y pixels)."""
    frames = np.empty((count, HEIGHT, WIDTH, CHANNELS), dtype=np.uint8)
    centres = np.empty((count, PLATE_LEN, 2), dtype=np.float32)
    texts = []
    for i in range(count):
        frames[i], text, centres[i] = render_annotated(seed, start + i)
        texts.append(text)
    return frames, texts, centres


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_npz(path: Path, seed: int, count: int, start: int = 0) -> Path:
    """An `.npz` with x float32 (N, H, W, 3) in [0, 1], y int32 (N, 7) class indices, and the plate strings."""
    import io

    frames, texts = generate(seed, count, start)
    buf = io.BytesIO()
    np.savez(buf, x=frames.astype(np.float32) / 255.0, y=np.stack([encode(t) for t in texts]),
             plates=np.array(texts))
    _atomic_write(Path(path), buf.getvalue())
    return Path(path)


def ppm_bytes(frame: np.ndarray) -> bytes:
    """Binary PPM (P6) of an HxWx3 uint8 frame, or PGM (P5) of an HxW one: what the C++ edge app reads."""
    magic = b"P6" if frame.ndim == 3 else b"P5"
    return magic + f"\n{frame.shape[1]} {frame.shape[0]}\n255\n".encode() + np.ascontiguousarray(frame).tobytes()


def write_frames(folder: Path, seed: int, count: int, start: int = 0) -> list[Path]:
    """`frame_NNNNN.ppm` files plus `labels.txt` ("frame_NNNNN.ppm AB123CD" per line) in `folder`."""
    folder = Path(folder)
    paths, lines = [], []
    for i in range(start, start + count):
        frame, text = render_frame(seed, i)
        path = folder / f"frame_{i:05d}.ppm"
        _atomic_write(path, ppm_bytes(frame))
        paths.append(path)
        lines.append(f"{path.name} {text}\n")
    _atomic_write(folder / "labels.txt", "".join(lines).encode())
    return paths


def main(argv: list[str] | None = None) -> int:
    """`python -m splitsdk.examples.lpr.data OUT --split test --count 64`: OUT.npz, or PPM frames if OUT is a folder."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m splitsdk.examples.lpr.data", description=main.__doc__)
    parser.add_argument("out", type=Path, help="a .npz file, or a folder for frame_NNNNN.ppm + labels.txt")
    parser.add_argument("--split", choices=sorted(SPLITS), default="test")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.suffix == ".npz":
        write_npz(args.out, SPLITS[args.split], args.count, args.start)
    else:
        write_frames(args.out, SPLITS[args.split], args.count, args.start)
    print(f"wrote {args.count} {args.split} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
