"""Real git repositories for unit tests: a history of commits, each writing
files, and what `git` says about the repository afterwards.

    repo = GitRepo(tmp_path / "linux")
    first = repo.commit("one", {"Makefile": "...", "drivers/x.c": "int a;\\n"})
    repo.state()   # HEAD, status and bisect state, to compare before and after
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
       "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_NOSYSTEM": "1"}


class GitRepo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        out = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True,
                             text=True, env={**os.environ, **ENV}, check=True)
        return out.stdout.strip()

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            p = self.path / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def state(self) -> tuple[str, str, str, bool]:
        """HEAD, the branch, `git status`, and whether a bisection is going on."""
        bisecting = (self.path / ".git" / "BISECT_LOG").exists() or \
            (self.path / ".git" / "BISECT_START").exists()
        return (self.git("rev-parse", "HEAD"), self.git("branch", "--show-current"),
                self.git("status", "--porcelain"), bisecting)
