"""The synthetic licence-plate frames: deterministic by seed, labels in the plate format, the files they write."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from splitsdk.examples.lpr import data, plate


def test_same_seed_same_bytes_and_frames_independent_of_batching() -> None:
    a, ta = data.generate(2, 6)
    b, tb = data.generate(2, 6)
    assert hashlib.sha256(a.tobytes()).digest() == hashlib.sha256(b.tobytes()).digest() and ta == tb
    tail, ttail = data.generate(2, 2, start=4)  # frame i depends on (seed, i) only
    assert np.array_equal(tail, a[4:]) and ttail == ta[4:]


def test_splits_differ_and_frames_vary() -> None:
    train, t_train = data.generate(data.SPLITS["train"], 4)
    test, t_test = data.generate(data.SPLITS["test"], 4)
    assert t_train != t_test and not np.array_equal(train, test)
    assert len(set(t_train)) == 4 and len({f.tobytes() for f in train}) == 4


def test_frames_have_the_documented_shape_and_use_the_range() -> None:
    frames, _ = data.generate(1, 8)
    assert frames.shape == (8, data.HEIGHT, data.WIDTH, data.CHANNELS) == (8, 128, 256, 3)
    assert frames.dtype == np.uint8
    assert frames.min() < 40 and frames.max() > 200  # lit scenes with dark and bright parts


def test_labels_follow_the_plate_format() -> None:
    _, texts = data.generate(0, 40)
    for text in texts:
        assert plate.is_valid_plate(text), text
        assert not set(text) & set("IOU")
        assert plate.labels_to_text(plate.encode(text)) == text
    assert plate.format_plate("AB123CD") == "AB-123-CD"


@pytest.mark.parametrize("text, valid", [
    ("AB123CD", True), ("ZZ000ZZ", True), ("AB123C", False), ("AB1234CD", False), ("A1123CD", False),
    ("AI123CD", False), ("AB12XCD", False), ("ab123cd", False),
])
def test_is_valid_plate(text: str, valid: bool) -> None:
    assert plate.is_valid_plate(text) is valid


def test_alphabet_and_blank() -> None:
    assert len(plate.ALPHABET) == 33 and len(set(plate.ALPHABET)) == 33
    assert plate.BLANK == 33 and plate.NUM_CLASSES == 34


def test_write_npz(tmp_path: Path) -> None:
    path = data.write_npz(tmp_path / "d" / "test.npz", seed=2, count=3)
    with np.load(path) as z:
        x, y, plates = z["x"], z["y"], z["plates"]
    frames, texts = data.generate(2, 3)
    assert x.dtype == np.float32 and x.shape == (3, 128, 256, 3) and 0.0 <= x.min() and x.max() <= 1.0
    assert np.array_equal(np.rint(x * 255).astype(np.uint8), frames)
    assert y.dtype == np.int32 and y.shape == (3, 7)
    assert [plate.labels_to_text(r) for r in y] == texts == list(plates)


def _read_pnm(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    magic, dims, maxval, pixels = raw.split(b"\n", 3)
    w, h = (int(v) for v in dims.split())
    assert maxval == b"255"
    return np.frombuffer(pixels, np.uint8).reshape((h, w, 3) if magic == b"P6" else (h, w))


def test_write_frames_ppm_and_labels(tmp_path: Path) -> None:
    paths = data.write_frames(tmp_path / "frames", seed=2, count=2, start=5)
    assert [p.name for p in paths] == ["frame_00005.ppm", "frame_00006.ppm"]
    frames, texts = data.generate(2, 2, start=5)
    for p, f in zip(paths, frames, strict=True):
        assert np.array_equal(_read_pnm(p), f)
    lines = (tmp_path / "frames" / "labels.txt").read_text().splitlines()
    assert lines == [f"frame_0000{i}.ppm {t}" for i, t in zip((5, 6), texts, strict=True)]


def test_pgm_for_grey_frames() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert data.ppm_bytes(grey) == b"P5\n4 3\n255\n" + grey.tobytes()


def test_data_cli_writes_npz_or_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert data.main([str(tmp_path / "val.npz"), "--split", "val", "--count", "2"]) == 0
    with np.load(tmp_path / "val.npz") as z:
        assert z["x"].shape == (2, 128, 256, 3) and list(z["plates"]) == data.generate(1, 2)[1]
    assert data.main([str(tmp_path / "frames"), "--count", "1", "--start", "3"]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_00003.ppm", "labels.txt"]
    assert "wrote 1 test frames" in capsys.readouterr().out
