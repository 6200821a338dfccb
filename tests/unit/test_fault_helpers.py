"""Pure parts of the fault helpers: ktest-fault's reply, failure sites."""

from __future__ import annotations

from orchestrator.scenario.faults import parse_nth, short_site

SITE = ("__kmalloc_cache_noprof < ktnic_alloc_ring [ktest_nic] < "
        "ktnic_alloc_ring_set [ktest_nic] < ktnic_open [ktest_nic] < __dev_open")


def test_parse_nth_failed_call() -> None:
    r = parse_nth("result=-12 (Cannot allocate memory) injected=1\n")
    assert r is not None
    assert (r.errno, r.message, r.injected) == (12, "Cannot allocate memory", True)


def test_parse_nth_success_without_injection() -> None:
    r = parse_nth("result=0 injected=0")
    assert r is not None
    assert (r.errno, r.injected) == (0, False)


def test_parse_nth_garbage() -> None:
    assert parse_nth("ktest-fault: usage") is None


def test_short_site_stops_at_the_driver() -> None:
    assert short_site(SITE, "ktest_nic") == "__kmalloc_cache_noprof < ktnic_alloc_ring"


def test_short_site_without_driver_frames() -> None:
    site = "a < b < c < d < e < f"
    assert short_site(site, "ktest_nic") == "a < b < c < d"
    assert short_site("", "ktest_nic") == ""
