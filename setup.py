"""Packaging glue: a wheel carries ktest's own files (profiles, plans, the
kernel fragments and patches, the image recipe, the ktest_nic source and the
NIC suite) inside the package, in orchestrator/_data/ (see
orchestrator/paths.py). Everything else is in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("qemu-configs", "guest-images", "drivers/ktest_nic", "tests/nic")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.ko", "*.mod*", ".*.cmd",
                                "Module.symvers", "modules.order")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        data = Path(self.build_lib) / "orchestrator" / "_data"
        for rel in SHIPPED:
            dest = data / rel
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(ROOT / rel, dest, ignore=IGNORE)


setup(cmdclass={"build_py": BuildWithData})
