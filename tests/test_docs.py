"""The documentation stays true: the wire document's worked example and tables against the real codec,
its one copy shipped beside the C, links that resolve, and no pointer to files outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from splitsdk import wire
from splitsdk.wire import ErrorCode, Limits, TensorKind, WireTensor

REPO = Path(__file__).resolve().parent.parent
WIRE_DOC = REPO / "sdk" / "native" / "wire-protocol.md"
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Folders and files the repository's own text lives in (what a clone holds and a user reads).
SCANNED = ["README.md", "sdk", "codegen", "templates", "tests", "host_tools", "benchmarks", "targets", "docs",
           "requirements.txt", "requirements-nodeps.txt", "Makefile", "pyproject.toml", "setup.py"]
TEXT_SUFFIXES = {".py", ".pyi", ".md", ".toml", ".txt", ".j2", ".c", ".h", ".sh", ".json", ".cfg", ""}


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _hexdump(block: str) -> bytes:
    """The bytes of `OFFSET: xx xx ...` lines, checking that each line starts where the previous one ended."""
    out = bytearray()
    for line in block.strip().splitlines():
        offset, _, hex_bytes = line.partition(":")
        assert int(offset) == len(out), line
        out += bytes.fromhex(hex_bytes)
    return bytes(out)


def test_the_worked_example_is_what_the_encoder_writes() -> None:
    section = _section(WIRE_DOC.read_text(), "Worked example")
    dump = re.search(r"```text\n(.*?)```", section, re.S)
    assert dump is not None
    documented = _hexdump(dump.group(1))
    payload = wire.pack(np.array([1, 2, 3, 4, 5, 6], np.uint8), 4)
    frame = wire.Frame(7, 1_000_000, (WireTensor(TensorKind.PACKED, 4, 0.5, 8, (2, 3), payload),))
    assert wire.encode(frame) == documented
    assert wire.decode(documented) == (frame, 63)
    assert f"`{wire.crc32(documented[:-4]):#010x}`" in section
    values = wire.unpack_dequantize(payload, (2, 3), 4, 0.5, 8).reshape(-1)
    assert " ".join(f"{v:g}" for v in values) in section


@pytest.mark.parametrize(("codes", "bits"), [([1, 2, 3, 4, 5, 6], 4), ([5, 3, 7, 1, 6], 3)])
def test_the_bit_packing_examples_are_what_pack_writes(codes: list[int], bits: int) -> None:
    packed = wire.pack(np.array(codes, np.uint8), bits).hex(" ")
    example = f"`b = {bits}`, codes `{' '.join(map(str, codes))}` -> bytes `{packed}`"
    assert example in " ".join(_section(WIRE_DOC.read_text(), "Bit packing").split())


def test_the_tables_hold_the_codec_limits_and_codes() -> None:
    text = WIRE_DOC.read_text()
    limits = Limits()
    for name in ("max_frame_bytes", "max_tensors", "max_rank", "max_dim", "max_elements"):
        assert re.search(rf"\| `{name}`[^|]*\| {getattr(limits, name):,}\b", text), name
    for code in ErrorCode:
        assert f"| {code.value} | {code.name} |" in text
    assert f"protocol version: {wire.PROTOCOL_VERSION} " in text and f"{wire.PREFIX_LEN} bytes" in text


def test_the_wire_document_has_one_copy_reachable_from_docs() -> None:
    assert (REPO / "docs" / "wire-protocol.md").resolve() == WIRE_DOC.resolve()
    for header in ("splitframe.h", "splitpack.h"):  # the C cites the document and its sections
        assert "docs/wire-protocol.md" in (WIRE_DOC.parent / header).read_text()
    text = WIRE_DOC.read_text()
    assert "\n## Frames\n" in text and "\n## Bit packing\n" in text


def test_relative_links_of_the_pages_resolve() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.partition("#")[0]).resolve()
            assert path.exists(), f"{page.relative_to(REPO)}: link {target} points at nothing"


def test_the_repository_refers_to_nothing_outside_itself() -> None:
    outside = re.compile("|".join(re.escape(s) for s in ("shared" + "/", "DESIGN" + ".md", "STYLE" + ".md")))
    found = []
    for name in SCANNED:
        root = REPO / name
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix not in TEXT_SUFFIXES or "__pycache__" in path.parts:
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if outside.search(line):
                    found.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
