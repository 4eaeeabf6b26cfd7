"""The one HOST:PORT parser (splitsdk.address) and its users: the code generator and `edge-sim`."""

from __future__ import annotations

import pytest

from splitsdk.address import AddressError, parse_hostport
from splitsdk.codegen import ServerSettings
from splitsdk.errors import GenerateError, SplitSdkError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1:7700", ("127.0.0.1", 7700)),
        ("cloud.example.com:443", ("cloud.example.com", 443)),
        ("[::1]:7700", ("::1", 7700)),
        ("[fe80::1%eth0]:1", ("fe80::1%eth0", 1)),
        (" host:0 ", ("host", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_parses_host_and_port(text: str, want: tuple[str, int]) -> None:
    assert parse_hostport(text, "server") == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nohostport", "expected HOST:PORT, got 'nohostport'$"),
        ("host:", "expected HOST:PORT"),
        ("host:http", "expected HOST:PORT"),
        ("host:65536", "expected HOST:PORT"),
        ("host:-1", "expected HOST:PORT"),
        ("::1:7700", "an IPv6 host needs brackets"),
        ("[::1:7700", r"expected \[IPv6\]:PORT"),
        ("[]:7700", r"expected \[IPv6\]:PORT"),
        (":7700", r"expected HOST:PORT, got ':7700' \(no host\)"),
    ],
)
def test_bad_address_is_one_line_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=f"^server: {message}"):
        parse_hostport(text, "server")


def test_errors_are_typed_and_a_listening_address_may_omit_the_host() -> None:
    assert issubclass(AddressError, SplitSdkError) and issubclass(AddressError, ValueError)
    assert parse_hostport(":7700", "listen", default_host="0.0.0.0") == ("0.0.0.0", 7700)
    assert parse_hostport("[::]:7700", "listen", default_host="0.0.0.0") == ("::", 7700)


def test_server_settings_name_the_field_or_the_flag() -> None:
    assert ServerSettings.parse("[::1]:9000", None) == ServerSettings("::1", 9000, "camera-0")
    assert ServerSettings.parse(None, "cam-7") == ServerSettings(device_id="cam-7")
    with pytest.raises(AddressError, match="^server: expected HOST:PORT"):
        ServerSettings.parse("nohostport", None)
    with pytest.raises(AddressError, match="^--server: expected HOST:PORT"):
        ServerSettings.parse("nohostport", None, what="--server")
    with pytest.raises(GenerateError, match="server port 0 is outside 1..65535"):
        ServerSettings.parse("host:0", None)
