"""What a run needs built before its pairs start: the kernel and image of its
choices and each driver under test, from the cache or built now. Every pair
process then starts from the cache, and a failed build is one clear error,
not one per pair.

:class:`Built` says what that was, by key, and the same of what a run
recorded in run.json, so that a replay (`ktest repro`) can say where it is
not the run it replays.

A :class:`Job` is a run to make again and again with one input changed:
`ktest bisect` runs it at each commit of a kernel tree or a driver's source,
`ktest validate` on a patch's base and on the patch (:meth:`Job.at`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.builds.common import Progress
from orchestrator.machine import session
from orchestrator.runs import plan as plan_mod
from orchestrator.runs.choices import Choices
from orchestrator.runs.execute import RunOptions
from orchestrator.runs.plan import Plan
from orchestrator.scenario import drivers


@dataclass(frozen=True)
class Built:
    kernel: str | None  # the kernel's cache key
    release: str | None = None
    tree_id: str | None = None  # a user's tree: the state it was built from
    image: str | None = None  # the image's cache key
    modules: dict[str, str] = field(default_factory=dict)  # driver name -> its .ko

    @classmethod
    def of_manifest(cls, m: dict[str, Any]) -> Built:
        """What run.json says its pairs ran with (None: not recorded)."""
        kernel, image = m.get("kernel") or {}, m.get("image") or {}
        return cls(kernel.get("key"), kernel.get("release"), kernel.get("tree_id"),
                   image.get("key"), {str(k): str(v) for k, v in (m.get("modules") or {})
                                      .items()})


def build(choices: Choices, driver_specs: Sequence[str], progress: Progress | None = None,
          coverage: bool = False) -> Built:
    """The kernel and image of `choices` and each driver of `driver_specs`,
    built when the cache lacks them. BuildError (or FileNotFoundError for a
    missing .ko or module directory) when one cannot be."""
    arts = session.artifacts(choices.kernel_request(), progress)
    modules = {}
    for spec in sorted(set(driver_specs)):
        drv = drivers.resolve_driver(spec, arts, progress, coverage=coverage)
        if drv.ko is not None:
            modules[drv.name] = str(drv.ko)
    return Built(arts.kernel.key, arts.kernel.release, arts.kernel.info.get("tree_id"),
                 arts.image.key, modules)


def differences(recorded: Built, now: Built) -> list[str]:
    """Where `now` is not what a run `recorded` (what it did not record
    cannot differ), one line each."""
    out = []
    if recorded.kernel and now.kernel != recorded.kernel:
        out.append(f"kernel {now.release} ({now.kernel}), the run had {recorded.release} "
                   f"({recorded.kernel})")
    elif recorded.tree_id and now.tree_id != recorded.tree_id:
        out.append(f"kernel tree at {now.tree_id}, the run's was at {recorded.tree_id}")
    if recorded.image and now.image != recorded.image:
        out.append(f"image {now.image}, the run had {recorded.image}")
    for name, ko in sorted(recorded.modules.items()):
        mine = now.modules.get(name)
        if mine is not None and mine != ko:
            out.append(f"module {name} {Path(mine).parent.name}, the run had "
                       f"{Path(ko).parent.name}")
    return out


KERNEL, DRIVER = "kernel", "driver"  # what a tree is as a build input


def tree_kind(path: Path) -> str:
    """KERNEL for a kernel tree (a Makefile and a Kconfig at its top), DRIVER
    for a module source (a Kbuild or a Makefile); ValueError if neither."""
    if (path / "Makefile").is_file() and (path / "Kconfig").is_file():
        return KERNEL
    if (path / "Kbuild").is_file() or (path / "Makefile").is_file():
        return DRIVER
    raise ValueError(f"{path}: neither a kernel tree (Makefile and Kconfig) nor a module "
                     "source (Kbuild or Makefile)")


@dataclass(frozen=True)
class Job:
    """A run to make with one input changed each time: the plan and the
    kernel/QEMU choices, the tests (a -k expression, test ids per pair), the
    driver parameters and the suite's knobs."""

    plan: Plan
    choices: Choices
    k: str | None = None
    tests: Mapping[str, Sequence[str]] | None = None  # test ids per pair label
    driver_params: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def at(self, kind: str, path: Path) -> Job:
        """The same with the kernel tree (KERNEL) or the driver's source
        (DRIVER) at `path`. PlanError when the plan has no pair of that
        driver."""
        if kind == KERNEL:
            return replace(self, choices=replace(self.choices, kernel=None, kernel_src=str(path)))
        return replace(self, plan=plan_mod.with_driver(self.plan, str(path)))

    @property
    def driver_specs(self) -> list[str]:
        return sorted({p.driver for p in self.plan.pairs})

    def build(self, progress: Progress | None = None) -> Built:
        """What the job needs, from the cache or built now (see build())."""
        return build(self.choices, self.driver_specs, progress)

    def options(self, **more: Any) -> RunOptions:
        """How run_plan runs it; `more` (reruns, issues, more for run.json
        in `manifest`, more knobs in `env`) as for RunOptions."""
        params = ["--ktest-driver-params", self.driver_params] if self.driver_params else []
        manifest = {"choices": self.choices.to_dict(),
                    "driver_params": self.driver_params or None, **more.pop("manifest", {})}
        env = {**self.env, **more.pop("env", {})}
        return RunOptions(k=self.k, extra=(*self.choices.plugin_args(), *params),
                          tests=self.tests, manifest=manifest, env=env, **more)
