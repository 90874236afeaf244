"""The commits release commands make, built with git plumbing on an explicit parent.

A promotion or rollback commit is assembled in a private index (`GIT_INDEX_FILE`) from the
parent's tree plus the release files, so the working tree, whatever is staged there and the
checked-out ref are never read into it or reset. `land()` moves a branch to such a commit:
locally, or on `origin` with retries when another commit landed first (the commit is rebuilt
on the new tip; nothing local is reset). The local branch follows by fast-forward only.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.io import UserError

BOT = {
    "GIT_AUTHOR_NAME": "llmops",
    "GIT_AUTHOR_EMAIL": "llmops@localhost",
    "GIT_COMMITTER_NAME": "llmops",
    "GIT_COMMITTER_EMAIL": "llmops@localhost",
}


def git(*args: str, check: bool = True, env: dict | None = None, data: bytes | None = None) -> str:
    """Run git; stdout stripped. A failure is a UserError quoting git's message."""
    proc = subprocess.run(
        ["git", *args],
        capture_output=True,
        input=data,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        raise UserError(f"git {' '.join(args)} failed: {one_line(proc.stderr or proc.stdout)}")
    return proc.stdout.decode(errors="replace").strip()


def one_line(output: bytes) -> str:
    """Git's message on one line (its lines joined)."""
    return " / ".join(
        line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()
    )


def remote_url(remote: str) -> str:
    """The URL git uses for `remote` (insteadOf applied), any credentials in it removed."""
    url = git("remote", "get-url", remote, check=False)
    return re.sub(r"(?<=://)[^/@]*@", "", url) if url else "not configured"


def remote_failure(remote: str, output: bytes) -> UserError:
    return UserError(
        f"git remote {remote} ({remote_url(remote)}) failed: {one_line(output)}; check the"
        " network, the URL and the token's rights, then rerun"
    )


def require_remote(remote: str = "origin") -> None:
    """Fail now, before anything is written, when `remote` does not answer."""
    proc = subprocess.run(["git", "ls-remote", "--heads", remote], capture_output=True)
    if proc.returncode != 0:
        raise remote_failure(remote, proc.stderr)


def fetch_branch(remote: str, branch: str) -> str:
    """Fetch `remote`'s `branch` into refs/remotes; its tip."""
    ref = f"refs/remotes/{remote}/{branch}"
    proc = subprocess.run(
        ["git", "fetch", "-q", remote, f"+refs/heads/{branch}:{ref}"], capture_output=True
    )
    if proc.returncode != 0:
        raise remote_failure(remote, proc.stderr)
    return git("rev-parse", ref)


# git push's words for "another commit landed first": fetch, rebuild, push again
REJECTED = re.compile(rb"\[rejected\]|non-fast-forward|fetch first|stale info|cannot lock ref")


def push_ref(remote: str, refspec: str) -> bool:
    """Push `refspec`; False when the remote rejected it because it moved meanwhile, an
    error naming the remote for anything else (unreachable, no rights, protected)."""
    proc = subprocess.run(["git", "push", "-q", remote, refspec], capture_output=True)
    if proc.returncode == 0:
        return True
    if REJECTED.search(proc.stderr) and not re.search(rb"protected|denied|GH006", proc.stderr):
        return False
    raise remote_failure(remote, proc.stderr)


def succeeds(*args: str) -> bool:
    return subprocess.run(["git", *args], capture_output=True).returncode == 0


def identity() -> dict:
    """Author and committer: git's own configuration (the CI bot's), else `llmops`."""
    return {} if git("config", "user.name", check=False) else BOT


def resolve(ref: str) -> str | None:
    """The commit `ref` names, or None."""
    out = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return out or None


def head() -> str:
    """The checked-out commit; an error in a repository without one."""
    commit = resolve("HEAD")
    if commit is None:
        raise UserError("this repository has no commit yet: commit first")
    return commit


def read_at(commit: str, path: Path | str) -> bytes | None:
    """The bytes of `path` at `commit`, or None where it does not exist."""
    proc = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:{Path(path).as_posix()}"], capture_output=True
    )
    return proc.stdout if proc.returncode == 0 else None


def changed_paths(commit: str) -> set[str]:
    """Paths a (non-merge) commit changed against its first parent."""
    return set(git("diff-tree", "--no-commit-id", "--name-only", "-r", commit).split())


def is_ancestor(older: str, newer: str) -> bool:
    return succeeds("merge-base", "--is-ancestor", older, newer)


def commit_files(parent: str, files: dict[str, bytes | None], message: str) -> str | None:
    """A commit on `parent` whose tree is the parent's with `files` written (None: removed);
    None when that changes nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", parent, env=env)
        for path, content in sorted(files.items()):
            if content is None:
                git("update-index", "--force-remove", "--", path, env=env)
                continue
            blob = git("hash-object", "-w", "--stdin", data=content)
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git("write-tree", env=env)
    if tree == git("rev-parse", f"{parent}^{{tree}}"):
        return None
    return git("commit-tree", tree, "-p", parent, "-F", "-", env=identity(), data=message.encode())


def current_branch() -> str | None:
    """The checked-out branch, or None when HEAD is detached."""
    return git("symbolic-ref", "--quiet", "--short", "HEAD", check=False) or None


@dataclass(frozen=True)
class Landed:
    """Where a release commit went: `commit` is None when there was nothing to commit."""

    commit: str | None
    branch: str
    pushed: bool
    local_note: str = ""


def follow(branch: str, commit: str) -> str:
    """Bring the local `branch` (and the working tree, when it is checked out) to `commit` by
    fast-forward; a note for the user when that is not possible."""
    local = resolve(f"refs/heads/{branch}")
    if local is None:
        git("update-ref", f"refs/heads/{branch}", commit)
        return ""
    if local == commit:
        return ""
    if not is_ancestor(local, commit):
        return f"local {branch} has commits that are not on origin: `git pull --rebase`"
    if current_branch() != branch:
        git("update-ref", f"refs/heads/{branch}", commit, local)
        return ""
    proc = subprocess.run(["git", "merge", "--ff-only", "-q", commit], capture_output=True)
    if proc.returncode != 0:
        return (
            f"{branch} moved to {commit[:12]}, but your working tree has changes to the same"
            f" files: commit or stash them, then `git merge --ff-only {commit[:12]}`"
        )
    return ""


def land(
    branch: str,
    build: Callable[[str], str | None],
    push: bool,
    remote: str = "origin",
    attempts: int = 5,
) -> Landed:
    """Build a commit on the tip of `branch` with `build(parent)` and move the branch to it.

    push=False: the local branch. push=True: `remote`'s branch, fetched first; when the push
    is rejected because another commit landed, fetch and build again on the new tip (at most
    `attempts` times). The local branch follows by fast-forward; nothing is ever reset.
    """
    if not push:
        parent = resolve(f"refs/heads/{branch}")
        if parent is None:
            raise UserError(f"no local branch {branch!r}: `git fetch` and `git switch {branch}`")
        commit = build(parent)
        note = follow(branch, commit) if commit else ""
        return Landed(commit, branch, False, note)
    for _ in range(attempts):
        parent = fetch_branch(remote, branch)
        local = resolve(f"refs/heads/{branch}")
        ahead = git("rev-list", "--count", f"{parent}..{local}") if local else "0"
        if ahead != "0":
            raise UserError(
                f"local {branch} has {ahead} commit(s) not on {remote}: push them first (a"
                " release names commits that origin holds), then rerun"
            )
        commit = build(parent)
        if commit is None:
            return Landed(None, branch, False, follow(branch, parent))
        if push_ref(remote, f"{commit}:refs/heads/{branch}"):
            git("update-ref", f"refs/remotes/{remote}/{branch}", commit)
            return Landed(commit, branch, True, follow(branch, commit))
    raise UserError(
        f"could not push to {remote}/{branch} after {attempts} attempts: another commit landed"
        " first each time; rerun"
    )
