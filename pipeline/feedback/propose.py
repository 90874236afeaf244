"""Open a pull request with the newly pulled preference pairs; its CI run (train.yml) retrains
with them and reports what they did to the model.

    llmops feedback pull && llmops feedback propose     # the weekly feedback workflow

Does nothing when the prefs file is unchanged. Otherwise: one commit on the branch
`feedback/prefs-<date>` (recreated if it exists), pushed to `origin`, and a pull request
against `--base` opened with the GitHub CLI (`gh`, authenticated by GH_TOKEN) unless that
branch already has one. A pull request opened with the workflow's own GITHUB_TOKEN starts no
other workflow, so give GH_TOKEN a token of a user or app (see docs/feedback.md).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.io import UserError
from pipeline.release.gitops import git, identity


def added_pairs(prefs: Path) -> tuple[int, int]:
    """(lines added, lines removed) in `prefs` against HEAD."""
    stat = git("diff", "--numstat", "HEAD", "--", str(prefs))
    if not stat:  # untracked: every line is new
        return sum(1 for _ in prefs.open(encoding="utf-8")), 0
    added, removed, _ = stat.split("\t", 2)
    return int(added), int(removed)


def gh(*args: str) -> str:
    exe = shutil.which("gh")
    if exe is None:
        raise UserError("the GitHub CLI `gh` is not installed (it is on GitHub's runners)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"gh {' '.join(args)} failed: {proc.stderr.strip()} (is GH_TOKEN set?)")
    return proc.stdout.strip()


def propose(prefs: Path, base: str, today: dt.date | None = None) -> str | None:
    """Commit, push and open the pull request; return its branch, or None if nothing changed."""
    if not git("status", "--porcelain", "--", str(prefs)):
        return None
    added, removed = added_pairs(prefs)
    branch = f"feedback/prefs-{(today or dt.date.today()).isoformat()}"
    title = f"feedback: {added} new or updated preference pairs from Label Studio"
    body = (
        f"`llmops feedback pull` changed `{prefs}`: +{added} / -{removed} lines (pairs).\n\n"
        "The dpo stage depends on `data/feedback`, so this pull request's training run"
        " fine-tunes on them and its report shows the effect on every metric."
    )
    git("switch", "-q", "-C", branch)
    git("add", "--", str(prefs))
    git("commit", "-q", "-m", title, "-m", body, env=identity())
    git("push", "-q", "--force", "origin", f"HEAD:refs/heads/{branch}")
    existing = json.loads(gh("pr", "list", "--head", branch, "--state", "open", "--json", "url"))
    if not existing:
        gh("pr", "create", "--base", base, "--head", branch, "--title", title, "--body", body)
    return branch


@command(
    "feedback",
    "propose",
    help="commit changed preference pairs to a branch and open a pull request (gh)",
    args=[
        arg("--prefs", help=f"prefs file (default: {paths.PREFS_FILE})"),
        arg("--base", default="main", help="the pull request's base branch"),
    ],
)
def main(args) -> int:
    from pipeline.paths import PREFS_FILE

    prefs = Path(args.prefs or PREFS_FILE)
    branch = propose(prefs, args.base)
    if branch is None:
        print(f"feedback propose: {prefs} unchanged; no pull request")
    else:
        print(f"feedback propose: pushed {branch} and opened (or updated) its pull request")
    return 0
