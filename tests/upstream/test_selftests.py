"""One upstream drivers/net selftest program against the NIC under test.

The program's result is this test's outcome (SKIP and XFAIL keep the
upstream reason); each of its KTAP subtests becomes a result of its own
(``<test id>/<subtest>``); the guest's console judges the whole run like any
other test.
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.plugin.results import SUBTESTS
from orchestrator.scenario import selftests as st


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def test_upstream(upstream_test: str, upstream: Any, request: pytest.FixtureRequest) -> None:
    res = st.run_program(upstream, upstream_test)
    request.node.user_properties.append(
        (SUBTESTS, [(s.name, s.outcome, s.reason) for s in res.subtests]))
    print(res.output)
    if res.result is None:
        pytest.fail(f"{upstream_test}: the runner printed no result\n{_tail(res.output)}",
                    pytrace=False)
    r = res.result
    if r.outcome == "skipped":
        pytest.skip(f"upstream: {r.reason}")
    if r.outcome == "xfailed":
        pytest.xfail(f"upstream: {r.reason}")
    if r.outcome == "failed":
        failed = [s.name for s in res.subtests if s.outcome == "failed"]
        what = f" ({len(failed)} subtests failed: {', '.join(failed[:6])})" if failed else ""
        pytest.fail(f"{upstream_test} failed{what}: {r.reason or _tail(res.output, 8)}",
                    pytrace=False)
