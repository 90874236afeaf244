"""`llmops feedback propose`: new pairs become one commit on a branch pushed to the remote and
a pull request (GitHub's CLI is the one stand-in: a script recording its arguments)."""

import json
import os
import stat

import pytest

from pipeline.feedback.propose import main, propose

from ..conftest import run

pytestmark = pytest.mark.integration


@pytest.fixture
def clone(in_tmp, monkeypatch):
    run(["git", "init", "-q", "--bare", "-b", "main", "remote.git"], cwd=in_tmp)
    repo = in_tmp / "repo"
    run(["git", "clone", "-q", str(in_tmp / "remote.git"), str(repo)], cwd=in_tmp)
    (repo / "data/feedback").mkdir(parents=True)
    (repo / "data/feedback/prefs.jsonl").write_text('{"id": "s1"}\n')
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=repo)
    run(["git", "push", "-q", "origin", "HEAD:main"], cwd=repo)
    bin_dir = in_tmp / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(f'#!/bin/sh\necho "$*" >> {in_tmp}/gh.log\ncase "$2" in list) echo "[]";; esac\n')
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(repo)
    return repo


def test_unchanged_prefs_open_nothing(clone, capsys):
    class Args:
        prefs, base = None, "main"

    assert main(Args) == 0
    assert "unchanged; no pull request" in capsys.readouterr().out
    assert not (clone.parent / "gh.log").exists()


def test_new_pairs_are_pushed_to_a_branch_with_a_pull_request(clone):
    prefs = clone / "data/feedback/prefs.jsonl"
    prefs.write_text(prefs.read_text() + json.dumps({"id": "ls-1"}) + "\n")
    (clone / "unrelated.txt").write_text("not part of the proposal")
    import datetime as dt

    branch = propose(prefs.relative_to(clone), "main", dt.date(2026, 11, 23))
    assert branch == "feedback/prefs-2026-11-23"
    remote = clone.parent / "remote.git"
    files = run(["git", "show", "--name-only", "--format=%s", branch], cwd=remote).stdout
    assert files.splitlines()[0] == "feedback: 1 new or updated preference pairs from Label Studio"
    assert files.split()[-1] == "data/feedback/prefs.jsonl" and "unrelated" not in files
    calls = (clone.parent / "gh.log").read_text().splitlines()
    assert calls[0].startswith(f"pr list --head {branch}")
    assert calls[1].startswith(f"pr create --base main --head {branch} --title feedback: 1 new")
