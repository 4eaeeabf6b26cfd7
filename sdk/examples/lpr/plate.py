"""The plate format and the label encoding (no imaging imports: the cloud's decoding hook uses this module).

Format (fixed): 2 letters, 3 digits, 2 letters, printed "AB-123-CD" as on French SIV plates. Like SIV, the
letters I, O and U are never used (they read as 1, 0 and V). Labels are the 7 characters without the dashes as
indices into `ALPHABET` (= the model's class indices); the CTC blank is the last class (`BLANK`).
"""

from __future__ import annotations

import numpy as np

LETTERS = "ABCDEFGHJKLMNPQRSTVWXYZ"  # no I, O, U
DIGITS = "0123456789"
ALPHABET = LETTERS + DIGITS
BLANK = len(ALPHABET)  # CTC blank: the last class
NUM_CLASSES = len(ALPHABET) + 1
PLATE_LEN = 7
PLATE_PATTERN = "LLDDDLL"  # L: letter, D: digit


def random_plate(rng: np.random.Generator) -> str:
    """A plate string in the fixed format, e.g. "AB123CD"."""
    return "".join(str(rng.choice(list(LETTERS if kind == "L" else DIGITS))) for kind in PLATE_PATTERN)


def is_valid_plate(text: str) -> bool:
    """Whether `text` is 7 characters in the format (letters, digits, letters; no I/O/U)."""
    return len(text) == PLATE_LEN and all(
        c in (LETTERS if kind == "L" else DIGITS) for c, kind in zip(text, PLATE_PATTERN, strict=True)
    )


def format_plate(text: str) -> str:
    """The printed form: "AB123CD" -> "AB-123-CD"."""
    return f"{text[:2]}-{text[2:5]}-{text[5:]}"


def encode(text: str) -> np.ndarray:
    """Plate string -> int32 class indices (into `ALPHABET`)."""
    return np.array([ALPHABET.index(c) for c in text], dtype=np.int32)


def labels_to_text(labels: np.ndarray) -> str:
    """Class indices -> plate string (inverse of `encode`)."""
    return "".join(ALPHABET[int(i)] for i in labels)
