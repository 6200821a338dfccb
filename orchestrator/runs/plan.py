"""Plans: which suites run on which (profile, driver) pairs.

A plan (qemu-configs/plans/NAME.yaml)::

    description: every shipped pair that makes sense
    suites: [tests/nic]
    pairs:
      - {profile: e1000e, driver: ktest_nic}
      - {profile: virtio-net, driver: virtio_net}

Errors name the file, the line and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from orchestrator import paths, yamlconf
from orchestrator.scenario import drivers
from orchestrator.scenario.drivers import Pair
from orchestrator.yamlconf import ConfigError, Reader

DEFAULT_PLAN = "default"
DEFAULT_SUITES = ("tests/nic",)
PlanError = ConfigError


@dataclass(frozen=True)
class Plan:
    name: str
    path: Path | None
    description: str
    suites: tuple[str, ...]
    pairs: tuple[Pair, ...]
    pcap: bool = True
    text: str = ""  # the YAML as read (or made): copied into the run directory


def plan_path(name: str) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") or "/" in name:
        return p
    return paths.plans_dir() / f"{name}.yaml"


def shipped_plans() -> list[str]:
    return sorted(p.stem for p in paths.plans_dir().glob("*.yaml"))


def suite_path(suite: str) -> Path:
    """A suite entry (path[::test]) resolved against ktest's own files."""
    target = suite.split("::")[0]
    p = Path(target)
    return p if p.is_absolute() or p.exists() else paths.data_root() / target


def load_plan(name: str = DEFAULT_PLAN) -> Plan:
    path = plan_path(name)
    if not path.exists():
        raise PlanError(f"{path}: no such plan (shipped plans: {', '.join(shipped_plans())})")
    data, text = yamlconf.load(path, "plan")
    return parse_plan(data, path, text)


def parse_plan(data: object, path: Path, text: str = "") -> Plan:
    where = str(path)
    r = Reader(data, where)
    suites = r.strings("suites") or DEFAULT_SUITES
    for s in suites:
        if not suite_path(s).exists():
            raise r.error("suites", f"{s} does not exist")
    if not r.has("pairs"):
        raise r.error("pairs", "expected a non-empty list of {profile, driver}")
    pairs: list[Pair] = []
    for _, item, key, line in r.items("pairs"):
        p = Reader(item, where, key, line)
        pair = Pair(p.required("profile", str, "a profile name or path"),
                    p.required("driver", str, "a driver"))
        p.finish()
        try:
            drivers.check_pair(pair)
        except drivers.PairError as e:
            raise PlanError(f"{where}:{line}: {key}: {e}") from None
        if pair in pairs:
            raise PlanError(f"{where}:{line}: {key}: duplicate pair {pair.label}")
        pairs.append(pair)
    if not pairs:
        raise r.error("pairs", "expected a non-empty list of {profile, driver}")
    pcap = r.get("pcap", bool, True, "true or false")
    desc = r.get("description", str, "", "a string")
    r.finish()
    return Plan(path.stem, path, desc, tuple(suites), tuple(pairs), pcap, text)


def adhoc_plan(machines: list[str], driver_specs: list[str], base: Plan) -> Plan:
    """The pairs given on the command line (-m/-d), with `base`'s suites."""
    try:
        pairs = drivers.pairs_for(machines, driver_specs)
    except drivers.PairError as e:
        raise PlanError(str(e)) from None
    lines = [f"# ktest run {' '.join(f'-m {m}' for m in machines)} "
             f"{' '.join(f'-d {d}' for d in driver_specs)}".rstrip(),
             "description: pairs given on the command line",
             f"suites: [{', '.join(base.suites)}]", f"pcap: {str(base.pcap).lower()}", "pairs:"]
    lines += [f"  - {{profile: {p.profile}, driver: {p.driver}}}" for p in pairs]
    return Plan("command-line", None, "pairs given on the command line", base.suites,
                tuple(pairs), base.pcap, "\n".join(lines) + "\n")


def with_driver(plan: Plan, spec: str) -> Plan:
    """The pairs of `plan` whose driver is the module `spec` builds (a module
    source directory, named after the module, or a .ko), with `spec` as
    their driver; PlanError if there are none or one cannot run with it."""
    name = drivers.module_name(spec)
    pairs = tuple(replace(p, driver=spec) for p in plan.pairs
                  if drivers.module_name(p.driver) == name)
    if not pairs:
        raise PlanError(f"plan {plan.name} has no pair with driver {name} "
                        f"({', '.join(p.label for p in plan.pairs)})")
    for pair in pairs:
        try:
            drivers.check_pair(pair)
        except drivers.PairError as e:
            raise PlanError(str(e)) from None
    lines = [f"# plan {plan.name} with driver {spec}",
             f"description: {json.dumps(plan.description)}",
             f"suites: [{', '.join(plan.suites)}]", f"pcap: {str(plan.pcap).lower()}", "pairs:"]
    lines += [f"  - {{profile: {p.profile}, driver: {p.driver}}}" for p in pairs]
    return replace(plan, pairs=pairs, text="\n".join(lines) + "\n")
