"""Shared pytest set-up: VM tests are marked `vm` and need the built guest.

In CI (CI=true) a VM test that cannot run is a failure, never a skip: the
`artifacts` fixture builds the kernel and image through the cache, and any
missing prerequisite raises.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

try:
    # Imported here, at a shallow stack: hypothesis' pytest plugin otherwise
    # imports it during the terminal summary, where CPython 3.11's AST
    # validator can fail with "recursion depth mismatch" on pytest's rewrite.
    import hypothesis  # noqa: F401
except ImportError:
    pass

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--nic-selection", metavar="FILE", default=None,
                     help="run only the NIC-suite tests FILE lists (tests/nic/ci.txt: "
                          "the project's CI set); other tests are not affected")


def nic_key(item: pytest.Item) -> str | None:
    """FILE::NAME[OWN-PARAMS] of a NIC-suite test (its pair left out), else None."""
    path = str(item.fspath).replace(os.sep, "/")
    if "/tests/nic/" not in path:
        return None
    name = getattr(item, "originalname", item.name)
    callspec = getattr(item, "callspec", None)
    own = ""
    if callspec is not None:
        pair = callspec.params.get("ktest_pair")
        ident = callspec.id
        if pair is not None and ident.startswith(pair.label):
            ident = ident[len(pair.label):].lstrip("-")
        own = f"[{ident}]" if ident else ""
    return f"{Path(path).name}::{name}{own}"


# collected only when named (ktest run --plan upstream, --plan zoo)
OPT_IN = (ROOT / "tests" / "upstream", ROOT / "tests" / "zoo")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    path = collection_path.resolve()
    suite = next((s for s in OPT_IN if path == s or s in path.parents), None)
    if suite is None:
        return None
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not any(a == path or a == suite or suite in a.parents or path in a.parents
                   for a in named) or None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if re.search(r"tests/(vm|nic|upstream|zoo)/", str(item.fspath).replace(os.sep, "/")):
            item.add_marker(pytest.mark.vm)
    listed = config.getoption("--nic-selection")
    if not listed:
        return
    lines = Path(listed).read_text().splitlines()
    wanted = {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}
    keep, drop = [], []
    for item in items:
        key = nic_key(item)
        (keep if key is None or key in wanted else drop).append(item)
    missing = wanted - {nic_key(i) for i in keep}
    if missing:
        raise pytest.UsageError(f"{listed}: no such NIC-suite test: {', '.join(sorted(missing))}")
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def require(condition: bool, reason: str) -> None:
    """Skip locally when a prerequisite is missing; fail in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def prerequisite() -> Callable[[bool, str], None]:
    """:func:`require` as a fixture, for test modules that cannot import this
    conftest by name (another folder's conftest may be first on sys.path)."""
    return require


@pytest.fixture(scope="session")
def artifacts():  # type: ignore[no-untyped-def]
    """The default debug kernel and guest image, built (or taken from the cache)."""
    require(shutil.which("qemu-system-x86_64") is not None, "qemu-system-x86_64 not installed")
    from orchestrator.builds.kernel import DEFAULT_VERSION, SOURCES

    src = SOURCES[DEFAULT_VERSION]
    require(src.tarball.exists(), f"{src.package} not installed")
    require(shutil.which("mmdebstrap") is not None, "mmdebstrap not installed")
    from orchestrator.machine import session

    return session.artifacts()


@pytest.fixture
def machine_factory(artifacts, tmp_path):  # type: ignore[no-untyped-def]
    """Create Machines for profiles; every one is shut down after the test."""
    from orchestrator.machine import session

    made = []

    def make(profile: str = "e1000e", **kw):  # type: ignore[no-untyped-def]
        run_dir = kw.pop("run_dir", tmp_path / f"run-{len(made)}-{profile}")
        m = session.make_machine(profile, artifacts, run_dir=run_dir, **kw)
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.shutdown()


@pytest.fixture
def booted(machine_factory) -> Iterator:  # type: ignore[no-untyped-def]
    """A booted default (e1000e) guest."""
    m = machine_factory("e1000e")
    m.launch()
    yield m
