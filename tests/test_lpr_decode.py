"""CTC greedy decoding (numpy) and the cloud's "lpr_ctc" post-processing hook."""

from __future__ import annotations

import json

import numpy as np
import pytest

from splitsdk.cloud.postprocess import resolve
from splitsdk.examples.lpr.decode import best_path, decode
from splitsdk.examples.lpr.plate import ALPHABET, BLANK, NUM_CLASSES

B = BLANK


def _one_hot(path: list[int], confidence: float = 0.9) -> np.ndarray:
    out = np.full((len(path), NUM_CLASSES), (1 - confidence) / (NUM_CLASSES - 1), dtype=np.float32)
    out[np.arange(len(path)), path] = confidence
    return out


def _cls(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


@pytest.mark.parametrize("path, expected", [
    ([B, B, B], ""),
    (_cls("AAB") + [B], "AB"),                           # repeats merge
    (_cls("A") + [B] + _cls("A"), "AA"),                 # a blank separates a real double letter
    ([B] + _cls("AB") + [B, B] + _cls("1") + [B] + _cls("23CCD"), "AB123CD"),
    (_cls("ZZ9"), "Z9"),
])
def test_greedy_decoding(path: list[int], expected: str) -> None:
    assert decode(_one_hot(path)) == [expected]


def test_batch_and_single_frame_agree() -> None:
    frames = np.stack([_one_hot(_cls("AB") + [B] * 4), _one_hot([B] + _cls("XY") + [B] * 3)])
    assert decode(frames) == ["AB", "XY"]
    assert decode(frames[1]) == ["XY"]
    assert best_path(frames) == [_cls("AB"), _cls("XY")]


def test_decode_rejects_wrong_class_count() -> None:
    with pytest.raises(ValueError, match="CTC outputs"):
        decode(np.zeros((2, 8, NUM_CLASSES + 1)))


def test_lpr_ctc_hook_is_registered_and_reports_the_plate() -> None:
    hook = resolve({"kind": "lpr_ctc"})
    path = [B] + _cls("AB") + [B] + _cls("123") + [B] + _cls("CD") + [B] * 3
    result = json.loads(hook([_one_hot(path)[None]]))
    assert result == {"plate": "AB123CD", "printed": "AB-123-CD", "valid": True, "score": 0.9}
    partial = json.loads(hook([_one_hot(_cls("AB1") + [B])]))
    assert partial["plate"] == "AB1" and partial["printed"] == "AB1" and partial["valid"] is False
