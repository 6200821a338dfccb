"""`ktest doctor` and `ktest build`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.cli.common import EXIT_FAIL, Progress, die, die_build, kernel_request


def cmd_doctor(args: argparse.Namespace) -> int:
    from orchestrator.machine import doctor

    def check() -> tuple[list[Any], Any]:
        return [doctor.run_check(c) for c in doctor.CHECKS], doctor.qemu_status()

    statuses, qemu_st = check()
    missing = [s for s in statuses if not s.found and not s.check.optional]
    if args.install and (missing or not qemu_st.found):
        pkgs = sorted({s.check.package for s in missing if s.check.package})
        print(f"installing: {' '.join([*pkgs, *(['QEMU'] if not qemu_st.found else [])])}")
        try:
            doctor.install(pkgs, qemu_too=not qemu_st.found)
        except PermissionError as e:
            die(str(e))
        statuses, qemu_st = check()
        missing = [s for s in statuses if not s.found and not s.check.optional]
    _, accel_text = doctor.accelerator_line(refresh=args.refresh_probe)

    def state(s: Any) -> str:
        return "found" if s.found else "absent" if s.check.optional else "MISSING"

    rows = [(qemu_st.check.name, state(qemu_st), qemu_st.detail)]
    rows += [(s.check.name, state(s), s.detail) for s in statuses]
    rows.append(("accelerator", "found", accel_text))
    rows.append(("cache", "found", doctor.cache_line()))
    features = doctor.qemu_features()
    if args.json:
        print(json.dumps({
            "checks": [{"name": n, "status": st, "detail": d} for n, st, d in rows],
            "qemu_features": [{"feature": f, "enabled": ok, "what": w}
                              for f, ok, w in features],
        }, indent=2))
    else:
        width = max(len(n) for n, _, _ in rows)
        for name, st, detail in rows:
            print(f"{name:<{width}}  {st:<7}  {detail}")
        if features:
            print("\nwhat this QEMU enables:")
            for f, ok, what in features:
                print(f"  {'yes' if ok else 'no ':<3}  {f}: {what}")
    if not qemu_st.found:
        missing.append(qemu_st)
    if missing:
        pkgs = sorted({s.check.package for s in missing if s.check.package})
        print(f"\nmissing: {', '.join(s.check.name for s in missing)}; "
              f"`ktest doctor --install` (as root) installs: {' '.join(pkgs)}", file=sys.stderr)
        return EXIT_FAIL
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from orchestrator.builds import image as image_mod
    from orchestrator.builds import kernel as kernel_mod
    from orchestrator.builds import module as module_mod

    progress = Progress()
    t = time.monotonic()
    try:
        if args.what == "kernel":
            k = kernel_mod.build_kernel(kernel_request(args), progress)
            progress.done()
            print(f"kernel {k.release} {k.key}: {k.bzimage} ({time.monotonic() - t:.1f}s)")
            print(f"  config: {k.config}\n  build tree: {k.build_dir}")
        elif args.what == "image":
            im = image_mod.build_image(progress)
            progress.done()
            print(f"image {im.key}: {im.cpio} ({time.monotonic() - t:.1f}s)")
        else:
            src = module_mod.check_src(Path(args.src) if args.src
                                       else module_mod.DEFAULT_MODULE_DIR)
            k = kernel_mod.build_kernel(kernel_request(args), progress)
            m = module_mod.build_module(src, k, progress)
            progress.done()
            for ko in m.kos:
                print(f"module {ko.name} {m.key}: {ko} ({time.monotonic() - t:.1f}s)")
    except kernel_mod.BuildError as e:
        die_build(e, progress)
    return 0
