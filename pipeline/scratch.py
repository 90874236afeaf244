"""A throw-away copy of the repository: what tests and benchmarks run `dvc repro` in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# What a run produces; removed by `from_nothing` so that a copy starts as a fresh clone would
# after `dvc pull` found nothing: every stage has to run.
PRODUCED = ("dvc.lock", "metrics", "plots", "data/prepared", "models/base", "models/adapter")


def working_tree_files(src: Path) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (the working tree, as committed
    or about to be)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({f for f in out.split("\0") if f and (src / f).is_file()})


def copy_repo(src: Path, dest: Path, from_nothing: bool = False) -> Path:
    """Copy the working tree of `src` to `dest` as a new git repository with one commit; the
    DVC remote and cache are not shared."""
    for rel in working_tree_files(src):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    if from_nothing:
        for rel in PRODUCED:
            path = dest / rel
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    git = ["git", "-c", "user.name=flywheel", "-c", "user.email=flywheel@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "scratch copy"], cwd=dest, check=True)
    return dest
