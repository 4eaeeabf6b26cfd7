"""Link helpers: parse a user's uplink rate ("3mbit", "500kbit", "1gbit", "3") into Mbit/s."""

from __future__ import annotations

import math
import re

from splitsdk.errors import LinkError

_PREFIX = {"": 1.0, "k": 1e-3, "m": 1.0, "g": 1e3}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(.*?)\s*$")
_UNIT = re.compile(r"^([kmg]?)(?:bits?|b)?(?:ps|/s)?$", re.I)


def parse_rate(text: str | float | int) -> float:
    """An uplink rate in Mbit/s. Plain numbers are Mbit/s; units kbit, mbit, gbit (also kbps, Mbit/s).

    Bytes ("3MB", "3mbytes") are refused on purpose: the link is specified in bits.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value = float(text)
    else:
        number = _NUMBER.match(str(text))
        unit = _UNIT.match(number.group(2)) if number else None
        if number is None or unit is None or "B" in number.group(2) or "byte" in number.group(2).lower():
            raise LinkError(
                f"bad link rate {text!r}: expected Mbit/s as a number or with a unit, "
                "e.g. 3, 3mbit, 500kbit, 1gbit"
            )
        value = float(number.group(1)) * _PREFIX[unit.group(1).lower()]
    if not math.isfinite(value) or value <= 0:
        raise LinkError(f"bad link rate {text!r}: must be a positive number of Mbit/s")
    return value
