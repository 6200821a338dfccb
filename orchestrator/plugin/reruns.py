"""--ktest-reruns N: a failed test runs again, up to N more times.

The rerun happens inside the pair's pytest process, so a healthy guest is
reused (the `machine` fixture replaces a broken one, as for any test; the
pair's last test gets a fresh one, since its guest went down in the failed
try's teardown). Only
the last try is reported to pytest (terminal, junit, exit status); the
earlier ones go straight to the results writer, which keeps every try in the
record and calls a test that failed and then passed "flaky".

A failure decided by a kernel report is final: the report is a bug even if
the next try would pass, and running again could only hide it.
"""

from __future__ import annotations

import pytest
from _pytest.runner import runtestprotocol

from orchestrator.plugin.results import ResultsHook


def worth_rerunning(reports: list[pytest.TestReport]) -> bool:
    if not any(rep.failed for rep in reports):
        return False
    return not any(k == "ktest_decided_by_report" for rep in reports
                   for k, _ in rep.user_properties)


class RerunHook:
    """Registered by the plugin when --ktest-reruns is above 0."""

    def __init__(self, config: pytest.Config, reruns: int) -> None:
        self.config = config
        self.reruns = reruns

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool:
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        results = self.config.pluginmanager.get_plugin("ktest-results")
        outcomes = []
        for left in range(self.reruns, -1, -1):
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
            outcomes.append("failed" if any(r.failed for r in reports) else "passed")
            stopping = item.session.shouldfail or item.session.shouldstop
            if left == 0 or stopping or not worth_rerunning(reports):
                break
            if isinstance(results, ResultsHook):
                results.attempt_done(item.nodeid, reports)
        if len(outcomes) > 1:
            reports[-1].user_properties.append(("ktest_tries", ", ".join(outcomes)))
        for rep in reports:
            ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True
