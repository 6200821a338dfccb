"""Property tests: the parser never raises, offsets are sane, and re-parsing from
a report's start finds the same report first."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_report import (  # same directory (pytest prepend import mode)
    AER_OK,
    DMA_MAP_ERROR,
    FAULT_INJECTION,
    GPF,
    HUNG_TASK,
    KASAN,
    KMEMLEAK,
    LINK,
    LOCKDEP,
    NOISE,
    NULL_DEREF,
    RCU_STALL,
    REFCOUNT,
    UNREGISTER,
    WARNING,
    WATCHDOG_61,
    ts,
)

from orchestrator.report import Kind, parse

CORPUS = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "report-corpus"
    / ("syzkaller-linux-dev.jsonl")
)

SNIPPETS = [
    AER_OK,
    DMA_MAP_ERROR,
    FAULT_INJECTION,
    GPF,
    HUNG_TASK,
    KASAN,
    KMEMLEAK,
    LINK,
    LOCKDEP,
    NOISE,
    NULL_DEREF,
    RCU_STALL,
    REFCOUNT,
    UNREGISTER,
    WARNING,
    WATCHDOG_61,
]


def check_offsets(data: bytes) -> list:
    reports = parse(data)
    prev = 0
    for r in reports:
        assert 0 <= r.start <= r.end <= len(data)
        assert r.start >= prev
        prev = r.start
        assert r.title
        assert r.severity in ("bug", "event")
    return reports


def check_reparse(data: bytes) -> None:
    for r in parse(data):
        if r.kind is Kind.REBOOT:
            continue  # needs the output before it
        again = parse(data[r.start :])
        assert again, r.title
        assert again[0].title == r.title


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    check_offsets(data)


line_strategy = st.one_of(
    st.sampled_from(
        [
            "BUG: KASAN: ",
            "WARNING:",
            "INFO: task ",
            "Call Trace:",
            " foo+0x1/0x2",
            "RIP: 0010:bar+0x3/0x4",
            "Kernel panic - not syncing: x",
            "------------[ cut here ]",
            "general protection fault",
            "NIC Link is Up",
            "AER: device recovery failed",
            "DMA-API: a b: c",
            "unreferenced object 0x1",
            "leaked reference.",
            "",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0x2FF), max_size=80),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line_strategy, max_size=60), st.sampled_from([None, "T1", "C0"]))
def test_header_soup(lines: list[str], caller: str | None) -> None:
    text = "\n".join(lines)
    for data in (text.encode("utf-8", "surrogatepass"), ts(text, caller=caller).encode()):
        check_offsets(data)
        check_reparse(data)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(range(len(SNIPPETS))), min_size=1, max_size=6),
    st.sampled_from([None, "T42", "C1"]),
    st.booleans(),
)
def test_snippet_sequences(order: list[int], caller: str | None, host: bool) -> None:
    parts = []
    for n, k in enumerate(order):
        parts.append(ts(SNIPPETS[k], 10.0 * (n + 1), caller if n % 2 else None))
    text = "".join(parts)
    if host:
        text = "".join(f"09:10:11.{i:06d} {line}\n" for i, line in enumerate(text.splitlines()))
    data = text.encode()
    reports = check_offsets(data)
    expected_bugs = sum(SNIPPETS[k] not in (NOISE, LINK, AER_OK, FAULT_INJECTION) for k in order)
    assert sum(r.severity == "bug" for r in reports) >= min(expected_bugs, 1)
    check_reparse(data)


def _corpus() -> list[bytes]:
    if not CORPUS.exists():
        return []
    out = []
    with CORPUS.open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if obj.get("text_b64"):
                out.append(base64.b64decode(obj["text_b64"]))
            else:
                out.append(obj["text"].encode("utf-8", "surrogateescape"))
    return out


@pytest.mark.skipif(not CORPUS.exists(), reason="report corpus not available")
def test_corpus_offsets_and_reparse() -> None:
    for data in _corpus():
        check_offsets(data)
        check_reparse(data)
