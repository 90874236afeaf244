"""Outages, one service at a time. Every command that talks to a service, run with that
service down, must end with exit code 2 and one line (`error: ...`) naming the service and
its URL and saying what to do, having written nothing: no commit, no tag, no moved MLflow
alias, a clean working tree. The same commands then succeed with every service up, so no
cell passes by never reaching its service.

The released workspace: the trained model registered (v1, tag `flywheel-notices@v1`),
promoted to staging and pushed to a bare `origin`, the tag `v1.0.0` on that promotion, a DVC
remote holding the published archive, a real MLflow server. A service is "down" as it is in
real life: a URL where nothing listens (MLflow, Label Studio, the Pushgateway, origin through
git's `insteadOf`), an S3 endpoint that does not answer (the DVC remote), a Prometheus that
exits at start, a release store that is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pipeline.processes import free_port

from ..conftest import BIN, run, running_mlflow_server

pytestmark = pytest.mark.e2e

MODEL = "flywheel-notices"
DEAD = f"http://127.0.0.1:{free_port()}"  # nothing listens there
# lines that are not the command's own words: DVC's note on frozen stages, MLflow's client
# logs, progress bars (tqdm's `name:  40%|####  | 41/103 [...]`)
NOISE = re.compile(r"WARNING: stage: 'crawl' is frozen|INFO mlflow|\d+%\|.*\| *\d+/\d+ \[")


@dataclass
class Released:
    repo: Path
    root: Path
    env: dict

    def sh(self, *cmd: str, env: dict | None = None, check: bool = True):
        proc = subprocess.run(
            cmd,
            cwd=self.repo,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stderr}")
        return proc

    def git(self, *args: str) -> str:
        return self.sh("git", *args).stdout.strip()

    def state(self) -> dict:
        """What a failed command must leave as it was."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.env["MLFLOW_TRACKING_URI"])
        aliases = client.get_registered_model(MODEL).aliases
        return {
            "refs": self.git("for-each-ref", "--format=%(refname) %(objectname)"),
            "origin": self.git("ls-remote", "origin"),
            "worktree": self.git("status", "--porcelain", "--untracked-files=all"),
            "aliases": dict(aliases),
            "versions": len(client.search_model_versions(f"name = '{MODEL}'")),
        }


@pytest.fixture(scope="module")
def released(workspace, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    repo = root / "repo"
    shutil.copytree(workspace, repo, symlinks=True)
    run(["git", "init", "-q", "--bare", "-b", "main", str(root / "origin.git")], cwd=root)
    with running_mlflow_server(f"sqlite:///{repo / '.mlflow/mlflow.db'}", root) as url:
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": url,
            "DVC_NO_ANALYTICS": "1",
        }
        r = Released(repo, root, env)
        r.git("config", "user.name", "release-bot")
        r.git("config", "user.email", "release-bot@localhost")
        r.sh("dvc", "remote", "modify", "storage", "url", str(root / "dvc-remote"))
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["release"]["servable_check"] = False  # vLLM cannot serve the tiny model
        (repo / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
        r.git("add", "-A")
        r.git("commit", "-q", "-m", "pipeline results")
        r.git("remote", "add", "origin", str(root / "origin.git"))
        r.git("push", "-q", "-u", "origin", "main")
        r.sh("llmops", "register", "--push")
        r.sh("dvc", "push", "-q")
        r.sh("llmops", "promote", "staging", "--push")
        r.git("tag", "-a", "v1.0.0", "-m", "release 1.0.0")
        # a candidate that is not staging's release: the rehearsal's stable side is v1
        shutil.copytree(repo / "models/adapter", root / "candidate")
        (root / "candidate" / "README.md").write_text("a candidate\n")
        (root / "tasks.jsonl").write_text(
            json.dumps({"feedback_id": "r1", "prompt": "p", "left": "a", "right": "b"}) + "\n"
        )
        request = {
            "time": "2026-11-01T00:00:00Z",
            "request_id": "r1",
            "model_version": "1",
            "prompt": "奖学金申请什么时候截止",
            "response": "11月30日",
            "latency_ms": 80.0,
            "prompt_tokens": 12,
            "completion_tokens": 6,
        }
        (root / "requests.jsonl").write_text(json.dumps(request, ensure_ascii=False) + "\n")
        yield r


# ---- how each service goes down ---------------------------------------------------------


def origin_down(r: Released) -> AbstractContextManager[dict]:
    rewrite = f"{DEAD.replace('http://', 'http://bot:s3cret-token@')}/flywheel.git"
    return nullcontext(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{rewrite}.insteadOf",
            "GIT_CONFIG_VALUE_0": str(r.root / "origin.git"),
        }
    )


@contextmanager
def s3_remote_down(r: Released):
    """The DVC remote on an S3 endpoint that does not answer (.dvc/config.local: untracked)."""
    local = r.repo / ".dvc" / "config.local"
    local.write_text(
        f"['remote \"storage\"']\n    url = s3://flywheel/dvc\n    endpointurl = {DEAD}\n"
    )
    try:
        yield {"AWS_ACCESS_KEY_ID": "flywheel", "AWS_SECRET_ACCESS_KEY": "not-a-secret"}
    finally:
        local.unlink()


@contextmanager
def release_store_gone(r: Released):
    store = r.root / "dvc-remote"
    store.rename(r.root / "dvc-remote.away")
    try:
        yield {}
    finally:
        (r.root / "dvc-remote.away").rename(store)


@contextmanager
def prometheus_fails(r: Released):
    fake = r.root / "fake-bin"
    fake.mkdir(exist_ok=True)
    script = fake / "prometheus"
    script.write_text(
        "#!/bin/sh\necho 'listen tcp 127.0.0.1:9090: bind: address already in use' >&2\nexit 1\n"
    )
    script.chmod(0o755)
    yield {"PATH": f"{fake}{os.pathsep}{r.env['PATH']}"}


def env_down(**env: str) -> Callable[[Released], AbstractContextManager[dict]]:
    return lambda r: nullcontext(env)


MLFLOW_DOWN = env_down(MLFLOW_TRACKING_URI=DEAD)
LABEL_STUDIO_DOWN = env_down(LABEL_STUDIO_URL=DEAD, LABEL_STUDIO_API_KEY="not-a-key")
NO_DOWN = env_down()


@dataclass
class Cell:
    command: str  # split on spaces; {root} is the fixture's folder
    service: str
    down: Callable[[Released], AbstractContextManager[dict]]
    says: list[str]  # words the one line must hold (the service and where it is)
    outcome: dict = field(default_factory=dict)


MLFLOW = ["MLflow at", DEAD, "unreachable"]
ORIGIN = ["git remote origin", DEAD]
LABEL_STUDIO = ["Label Studio at", DEAD, "unreachable"]
REHEARSE = "llmops rehearse --env staging --canary {root}/candidate --out {root}/rehearsal"
DRIFT = (
    "llmops drift --logs {root}/requests.jsonl --out {root}/drift.json --prom {root}/drift.prom"
    f" --pushgateway {DEAD}"
)
CELLS = [
    Cell("llmops register --push", "MLflow", MLFLOW_DOWN, MLFLOW),
    Cell("llmops register --push", "origin", origin_down, ORIGIN),
    Cell("llmops promote staging --push", "MLflow", MLFLOW_DOWN, MLFLOW),
    Cell(
        "llmops promote staging --push",
        "DVC remote",
        s3_remote_down,
        ["DVC remote 'storage'", "s3://flywheel/dvc", "unreachable"],
    ),
    Cell("llmops promote staging --push", "origin", origin_down, ORIGIN),
    Cell("llmops promote production --tag v1.0.0 --push", "MLflow", MLFLOW_DOWN, MLFLOW),
    Cell("llmops promote production --tag v1.0.0 --push", "origin", origin_down, ORIGIN),
    Cell("llmops rollback staging --push", "MLflow", MLFLOW_DOWN, MLFLOW),
    Cell("llmops rollback staging --push", "origin", origin_down, ORIGIN),
    Cell("llmops status", "MLflow", MLFLOW_DOWN, MLFLOW),
    Cell(
        "llmops feedback push --tasks {root}/tasks.jsonl",
        "Label Studio",
        LABEL_STUDIO_DOWN,
        LABEL_STUDIO,
    ),
    Cell(
        "llmops feedback pull --out {root}/prefs.jsonl",
        "Label Studio",
        LABEL_STUDIO_DOWN,
        LABEL_STUDIO,
    ),
    Cell(DRIFT, "Pushgateway", NO_DOWN, ["Pushgateway at", DEAD, "rerun"]),
    Cell(
        REHEARSE,
        "Prometheus",
        prometheus_fails,
        ["prometheus did not start", "address already in use"],
    ),
    Cell(
        REHEARSE,
        "release store",
        release_store_gone,
        ["cannot fetch the release adapter", "dvc-remote"],
    ),
]


def own_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip() and not NOISE.search(line)]


def test_every_service_down_is_one_clear_line_exit_2_and_nothing_written(released, capsys):
    r = released
    failures = []
    for cell in CELLS:
        command = cell.command.format(root=r.root).split()
        before = r.state()
        started = time.monotonic()
        with cell.down(r) as env:
            proc = r.sh(*command, env=env, check=False)
        lines = own_lines(proc.stderr)
        after = r.state()
        cell.outcome = {
            "code": proc.returncode,
            "s": time.monotonic() - started,
            "line": lines[-1:],
        }
        problems = []
        if proc.returncode != 2:
            problems.append(f"exit {proc.returncode}, not 2")
        if len(lines) != 1 or not lines[0].startswith("error: "):
            problems.append(f"{len(lines)} lines of its own, not one `error: ...`: {lines[:6]}")
        missing = [w for w in cell.says if w not in proc.stderr]
        if missing:
            problems.append(f"the line does not say {missing}")
        if (
            "s3cret-token" in proc.stderr + proc.stdout
            or "not-a-secret" in proc.stderr + proc.stdout
        ):
            problems.append("a credential was printed")
        changed = [k for k in before if before[k] != after[k]]
        if changed:
            problems.append(f"it changed {changed}: {[after[k] for k in changed]}")
        cell.outcome["ok"] = not problems
        if problems:
            failures.append(f"{cell.command[:40]} / {cell.service} down: {'; '.join(problems)}")
    with capsys.disabled():
        print(f"\nfault matrix: {len(CELLS)} cells (command x service down)")
        for cell in CELLS:
            o = cell.outcome
            verdict, line = "ok " if o["ok"] else "BAD", (o["line"] or [""])[0][:110]
            print(
                f"  {verdict} exit {o['code']} {o['s']:5.1f}s"
                f"  {cell.command[:36]:<36} {cell.service:<14} {line}"
            )
        print(f"  {sum(c.outcome['ok'] for c in CELLS)} of {len(CELLS)} handled as required")
    assert not failures, "\n".join(failures)


def test_with_every_service_up_the_same_commands_succeed(released):
    """The matrix's commands reach their services: up, they do their work."""
    r = released
    assert (
        "already registered as flywheel-notices v1" in r.sh("llmops", "register", "--push").stdout
    )
    assert "already in staging" in r.sh("llmops", "promote", "staging", "--push").stdout
    out = r.sh("llmops", "promote", "production", "--tag", "v1.0.0", "--push").stdout
    assert "flywheel-notices v1 to production" in out
    assert "production: flywheel-notices v1" in r.sh("llmops", "status").stdout
    assert (
        "reverted v1 in staging; now v0" in r.sh("llmops", "rollback", "staging", "--push").stdout
    )
    assert r.git("rev-parse", "HEAD") == r.git("rev-parse", "origin/main")
