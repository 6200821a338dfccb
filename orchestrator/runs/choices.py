"""The kernel and QEMU a run asked for, in one place: written to run.json,
turned into the plugin's options for each pair's pytest, and back into
`ktest run` options for a command that reproduces one test."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.builds.kernel import DEFAULT_VERSION, KernelRequest


def _absolute(path: str | None) -> str | None:
    # pytest runs with ktest's folder as its working directory: a path the
    # user gave relative to theirs must not change meaning on the way.
    return os.path.abspath(path) if path else None


@dataclass(frozen=True)
class Choices:
    kernel: str | None = None  # Debian linux-source version (6.12, 6.1)
    kernel_src: str | None = None
    variant: str = "debug"
    config: tuple[str, ...] = ()  # extra kernel config fragments
    accel: str | None = None
    qemu: str | None = None  # the QEMU binary, when not the default

    @classmethod
    def make(cls, kernel: str | None = None, kernel_src: str | None = None,
             variant: str = "debug", config: tuple[str, ...] = (), accel: str | None = None,
             qemu: str | None = None) -> Choices:
        return cls(kernel, _absolute(kernel_src), variant,
                   tuple(str(_absolute(c)) for c in config), accel, qemu)

    def kernel_request(self) -> KernelRequest:
        """The kernel build these choices ask for."""
        return KernelRequest(src=Path(self.kernel_src) if self.kernel_src else None,
                             variant=self.variant, version=self.kernel or DEFAULT_VERSION,
                             extra_fragments=tuple(Path(c) for c in self.config))

    def plugin_args(self) -> list[str]:
        """The pytest --ktest-* options that carry these choices."""
        return self._args({"kernel_src": "--ktest-kernel-src", "kernel": "--ktest-kernel",
                           "variant": "--ktest-kernel-variant",
                           "config": "--ktest-kernel-config", "accel": "--ktest-accel",
                           "qemu": "--ktest-qemu"})

    def cli_args(self) -> list[str]:
        """The same choices as `ktest run` options."""
        return self._args({"kernel_src": "--kernel-src", "kernel": "--kernel",
                           "variant": "--variant", "config": "--config", "accel": "--accel",
                           "qemu": "--qemu"})

    def _args(self, names: dict[str, str]) -> list[str]:
        out: list[str] = []
        for key, opt in names.items():
            value = getattr(self, key)
            if key == "variant" and value == "debug":
                continue
            for v in value if isinstance(value, tuple) else (value,):
                if v:
                    out += [opt, str(v)]
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = list(self.config)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Choices:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        known["config"] = tuple(known.get("config") or ())
        return cls(**known)
