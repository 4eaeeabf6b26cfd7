"""Link helpers: rates in Mbit/s from user text, bytes -> ms."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from splitsdk.errors import LinkError, SplitSdkError
from splitsdk.profile import Link, parse_rate


@pytest.mark.parametrize(
    "text,mbps",
    [
        ("3mbit", 3.0), ("3", 3.0), ("500kbit", 0.5), ("1gbit", 1000.0), ("2.5Mbit", 2.5), ("10mbps", 10.0),
        ("100 kbit/s", 0.1), ("1e2kbit", 0.1), ("3m", 3.0), (" 7 ", 7.0), (4, 4.0), (0.25, 0.25),
    ],
)
def test_parse_rate(text: str | float, mbps: float) -> None:
    assert parse_rate(text) == pytest.approx(mbps)


@pytest.mark.parametrize(
    "text", ["", "abc", "3MB", "3mbytes", "3 tbit", "-1", "0", "0kbit", "nan", "inf", "3 mbit extra"]
)
def test_bad_rate_is_a_clear_error(text: str) -> None:
    with pytest.raises(LinkError, match=r"bad link rate") as err:
        parse_rate(text)
    assert isinstance(err.value, SplitSdkError) and isinstance(err.value, ValueError)


def test_parse_rate_works_as_an_argparse_type() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uplink", type=parse_rate)
    assert parser.parse_args(["--uplink", "500kbit"]).uplink == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--uplink", "fast"])


def test_link_transmit_ms() -> None:
    link = Link(uplink_mbps=parse_rate("8mbit"), rtt_ms=20.0)
    assert link.transmit_ms(1_000_000) == pytest.approx(1000.0 + 20.0)  # 8 Mbit at 8 Mbit/s
    assert link.transmit_ms(0) == 0.0


@pytest.mark.parametrize("mbps,rtt", [(8.0, 20.0), (3.0, 0.0), (0.37, 12.5), (1234.5, 0.3)])
def test_one_link_formula_for_numbers_columns_and_linear_programs(mbps: float, rtt: float) -> None:
    link = Link(mbps, rtt)
    sizes = np.array([0, 1, 3, 777, 123_457, 10_000_001], dtype=np.int64)
    column = link.transmit_ms_array(sizes)
    # the exhaustive search's column holds exactly the values the scalar evaluation gives
    assert column.tolist() == [link.transmit_ms(int(n)) for n in sizes]
    # the linear programs' coefficient: transmit_ms = bytes * ms_per_byte + RTT (for anything sent)
    assert link.ms_per_byte == link.send_ms(1.0) == 8.0 / (mbps * 1e6) * 1e3
    for n in sizes[1:]:
        assert link.transmit_ms(int(n)) == pytest.approx(int(n) * link.ms_per_byte + rtt, rel=1e-12)
