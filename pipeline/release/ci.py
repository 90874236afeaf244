"""`llmops ci ...`: what the training workflow (.github/workflows/train.yml) does between its
jobs, so that a model is trained once per change and PR code never holds a write token.

    llmops ci plan        does `dvc repro` have anything to run here? (-> $GITHUB_OUTPUT)
    llmops ci pack        the PR job's results (dvc.lock, the git-tracked outputs, the report)
                          as one tar.gz in the candidates remote, named by its sha256 (the
                          job output; a job output or variable could not hold a large one)
    llmops ci publish     (trusted job, this repository's default-branch code) fetch that
                          bundle by sha256, write the report for the comment and commit the
                          results onto the PR head they were trained from, so the merge
                          carries the `dvc.lock` of the model the pull request shows
    llmops ci adopt       (main) fetch the outputs that `dvc.lock` names from the candidates
                          remote, hash-verified, into the trusted one; nothing is retrained
    llmops ci push        `dvc push --run-cache`, plus the run-cache entries' `cache: false`
                          outputs, which DVC's push leaves behind (so another machine can
                          restore the stage instead of rerunning it)
    llmops ci commit-results   (main, when it had to train) commit dvc.lock and the outputs
                          git keeps, pushed; `--local`: a plain commit here (`make demo`)
    llmops ci gate        exit 1 unless metrics/gate.json says passed
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path, PurePosixPath

import yaml

from pipeline.commands import arg, command
from pipeline.io import UserError
from pipeline.paths import GATE_METRICS, REPORTS_DIR
from pipeline.release import gitops

REPORT = REPORTS_DIR / "pr" / "report.md"
CANDIDATES = "candidates"


def set_output(name: str, value: str) -> None:
    """A step output for later jobs (GITHUB_OUTPUT); printed when not in a workflow."""
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(f"{name}={value}\n")
    print(f"{name}={value}")


def tracked_outputs(dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """Outputs dvc.yaml keeps in git (`cache: false`): with dvc.lock, the results of a run."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    found = []
    for stage in stages.values():
        if stage.get("frozen"):
            continue
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                if isinstance(entry, dict):
                    ((path, options),) = entry.items()
                    if (options or {}).get("cache") is False:
                        found.append(path)
    return sorted(found)


def tracked_files() -> list[str]:
    """The files of the outputs dvc.yaml keeps in git, here: a directory output (one plot per
    classification group) file by file."""
    found = []
    for path in tracked_outputs():
        p = Path(path)
        if p.is_dir():
            found += sorted(f.as_posix() for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            found.append(path)
    return found


def is_allowed(name: str, allowed: set[str]) -> bool:
    """`name` is one of `allowed`, or a file inside an allowed directory (no `..`, relative)."""
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts:
        return False
    return any(name == a or name.startswith(f"{a.rstrip('/')}/") for a in allowed)


def removed_results(parent: str, present: set[str]) -> dict[str, None]:
    """{path: None} for each file `parent` holds inside a git-tracked output directory that the
    new results no longer have (a classification dataset removed, its plot with it)."""
    gone: dict[str, None] = {}
    for path in tracked_outputs():
        listed = gitops.git("ls-tree", "-r", "--name-only", parent, "--", f"{path}/")
        gone |= {f: None for f in listed.splitlines() if f and f not in present}
    return gone


def stages_to_run() -> list[str]:
    """Stages whose dvc.lock entry does not describe their code, data, params or command.
    Outputs that are only absent here are not counted: `dvc repro --pull` fetches them."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        status = repo.status()
    stale = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):  # "changed command", "always changed", ...
                stale.append(stage)
                break
            deps = change.get("changed deps", {})
            if any(v != "deleted" for v in deps.values()):
                stale.append(stage)
                break
    return sorted(set(stale))


def plan() -> int:
    stale = stages_to_run()
    set_output("repro", "true" if stale else "false")
    set_output("stages", ",".join(stale))
    if stale:
        print(f"ci plan: dvc.lock is out of date for {', '.join(stale)}: `dvc repro` trains")
    else:
        print("ci plan: dvc.lock describes this commit: nothing to train (outputs are pulled)")
    return 0


def gate_passed() -> bool:
    try:
        return bool(json.loads(GATE_METRICS.read_text()).get("passed"))
    except (OSError, ValueError):
        return False


def bundle_path(remote, sha256: str) -> str:
    return remote.fs.join(remote.path, "bundles", f"{sha256}.tar.gz")


def candidates_remote():
    from dvc.repo import Repo

    return Repo(".").cloud.get_remote(CANDIDATES)


REPRO_FAILED = (
    "> ❌ **`dvc repro` failed before the gate could judge this change** (see the job's log):"
    " the results below are the base branch's, not this change's.\n\n"
)


def pack(outcome: str) -> int:
    """Upload the report (and after a successful `dvc repro`, dvc.lock and the git-tracked
    outputs) as one tar.gz to the candidates remote; its sha256 is the step output `bundle`.
    outcome: `dvc repro`'s step outcome, or `none` where nothing was reproduced."""
    paths = [REPORT.as_posix()]
    if outcome == "success":
        paths = ["dvc.lock", *tracked_files(), *paths]
    elif outcome == "failure" and gate_passed() and REPORT.exists():
        # the gate never ran: its verdict on disk is an older commit's
        REPORT.write_text(REPRO_FAILED + REPORT.read_text(encoding="utf-8"), encoding="utf-8")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for path in paths:
            if Path(path).is_file():
                info = tar.gettarinfo(path)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
    data = raw.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()
    remote = candidates_remote()
    target = bundle_path(remote, sha256)
    try:
        remote.fs.makedirs(remote.fs.parent(target), exist_ok=True)
        with remote.fs.open(target, "wb") as out:
            out.write(data)
    except Exception as exc:  # any filesystem's error: name the remote
        raise UserError(
            f"DVC remote {CANDIDATES!r} ({remote.path}): upload failed: {exc}"
        ) from None
    set_output("bundle", sha256)
    set_output("gate", "passed" if gate_passed() else "failed")
    print(f"ci pack: {len(paths)} files, {len(data):,} bytes -> {target}")
    return 0


def allowed_paths() -> set[str]:
    return {"dvc.lock", REPORT.as_posix(), *tracked_outputs()}


def fetch_bundle(sha256: str) -> dict[str, bytes]:
    """{path: bytes} of the bundle with this sha256 in the candidates remote, refusing a
    different content and anything but regular files at allowed paths."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise UserError(f"results bundle: {sha256!r} is not a sha256")
    remote = candidates_remote()
    try:
        with remote.fs.open(bundle_path(remote, sha256), "rb") as fh:
            data = fh.read()
    except Exception as exc:  # any filesystem's error: name the remote
        raise UserError(f"DVC remote {CANDIDATES!r} ({remote.path}): {exc}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UserError(f"results bundle {sha256[:12]}: content does not match its sha256")
    return read_bundle(data, allowed_paths())


def read_bundle(data: bytes, allowed: set[str]) -> dict[str, bytes]:
    """{path: bytes} of a tar.gz bundle whose members are all regular files at `allowed`
    paths; anything else (links, devices, other paths) refuses the whole bundle."""
    files = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar.getmembers():
                if not member.isfile() or not is_allowed(member.name, allowed):
                    raise UserError(f"results bundle: {member.name!r} is not an allowed result")
                fh = tar.extractfile(member)
                files[member.name] = fh.read() if fh else b""
    except (tarfile.TarError, EOFError) as exc:
        raise UserError(f"results bundle: not a tar.gz ({exc})") from None
    return files


def publish(bundle: str, branch: str | None, head: str | None) -> int:
    """Write the bundle's report; commit its results onto `head` and push them to `branch`."""
    files = fetch_bundle(bundle)
    report = files.pop(REPORT.as_posix(), None)
    if report is None:
        raise UserError("results bundle: no report")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_bytes(report)
    print(f"ci publish: {REPORT} written ({len(report):,} bytes)")
    if not files:
        return 0
    if not (branch and head and re.fullmatch(r"[0-9a-f]{40}", head)):
        raise UserError("ci publish: results need --branch and --head (the trained commit)")
    gate = json.loads(files.get(GATE_METRICS.as_posix(), b"{}") or b"{}")
    if not gate.get("passed"):
        print("ci publish: the gate failed: results are reported, not committed")
        return 0
    gitops.git("fetch", "-q", "origin", head)
    message = (
        "dvc.lock and metrics of this change's training\n\n"
        f"Trained-From: {head}\nCommitted by `llmops ci publish`: the merge carries the"
        " dvc.lock of the model this pull request shows, so main does not train it again.\n"
    )
    commit = gitops.commit_files(head, files | removed_results(head, set(files)), message)
    if commit is None:
        print("ci publish: the branch already holds these results")
        return 0
    if not gitops.push_ref("origin", f"{commit}:refs/heads/{branch}"):
        print(f"ci publish: {branch} moved past {head[:12]}: its own run commits its results")
        return 0
    print(f"ci publish: results committed to {branch} ({commit[:12]})")
    return 0


def adopt() -> int:
    """Bring the objects dvc.lock names into the trusted remote: from it where they are, else
    from the candidates remote (`verify = true`: DVC re-hashes what it downloads), check the
    workspace out and require that dvc.lock describes it completely."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with Repo(".") as repo:
        default = repo.config["core"].get("remote")
        for remote in (default, CANDIDATES):
            try:
                repo.fetch(remote=remote)
            except DvcException as exc:  # objects absent there: the other remote has them
                print(f"ci adopt: {remote}: {str(exc).splitlines()[0]}")
        try:
            repo.checkout(force=True)
        except DvcException as exc:
            raise UserError(
                f"outputs named by dvc.lock are in neither remote ({str(exc).splitlines()[0]}):"
                " rerun the pull request's training"
            ) from None
        changed = sorted(repo.status())
        if changed:
            raise UserError(f"dvc.lock does not describe {', '.join(changed)}: train first")
        pushed = repo.push(remote=default)
    print(f"ci adopt: every output dvc.lock names is here; {pushed} objects pushed to {default}")
    return 0


def commit_results(local: bool = False) -> int:
    """Commit dvc.lock and the git-tracked outputs of this workspace onto the branch it was
    trained from (pushed, retried); nothing when that branch moved meanwhile (the newer commit
    gets its own run). `local`: a plain commit in this clone, nothing pushed (`make demo`,
    so that a promotion names a commit holding the results it releases)."""
    from pipeline.release.promote import tracked_branch

    files: dict[str, bytes | None] = {
        p: Path(p).read_bytes() for p in ["dvc.lock", *tracked_files()]
    }
    if local:
        head = gitops.head()
        paths = sorted(files | removed_results(head, set(files)))
        if not gitops.git("status", "--porcelain", "--", *paths):
            print("ci commit-results: nothing changed")
            return 0
        gitops.git("add", "-A", "--", *paths)
        gitops.git(
            "commit",
            "-q",
            "-m",
            "dvc.lock and metrics of dvc repro",
            "--",
            *paths,
            env=gitops.identity(),
        )
        print(f"ci commit-results: {gitops.head()[:12]} (dvc.lock and metrics)")
        return 0
    branch, head = tracked_branch(), gitops.head()
    message = f"dvc.lock and metrics of main's training\n\nTrained-From: {head}\n"
    moved: list[str] = []

    def build(parent: str) -> str | None:
        if parent != head:
            moved.append(parent)
            return None
        return gitops.commit_files(
            parent, {**files, **removed_results(parent, set(files))}, message
        )

    landed = gitops.land(branch, build, push=True)
    if moved:
        print(f"ci commit-results: {branch} moved to {moved[-1][:12]}: its own run trains it")
    elif landed.commit:
        print(f"ci commit-results: {landed.commit[:12]} pushed to {branch}")
    else:
        print("ci commit-results: nothing changed")
    return 0


def gate() -> int:
    checks = json.loads(GATE_METRICS.read_text()) if GATE_METRICS.exists() else {}
    if checks.get("passed"):
        print("ci gate: passed")
        return 0
    failed = [c["name"] for c in checks.get("checks", []) if not c.get("passed")]
    print(f"ci gate: FAILED ({', '.join(failed) or f'{GATE_METRICS} missing'})")
    return 1


def push(remote: str | None) -> int:
    """`dvc push --run-cache`, then the objects of `cache: false` outputs its entries name."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        pushed = repo.push(remote=remote, run_cache=True)
        entries = [
            (p.parent.name, p.name)
            for p in Path(repo.cache.legacy.path, "runs").glob("*/*/*")
            if p.is_file()
        ]
        used = repo.stage_cache.get_used_objs(entries, remote=remote, force=True)
        extra = 0
        for objs in used.values():
            extra += len(repo.cloud.push(objs, remote=remote).transferred)
    print(f"ci push: {pushed} objects and run-cache entries, {extra} run-cache outputs")
    return 0


@command(
    "ci",
    help="train.yml's steps between jobs (see pipeline/release/ci.py)",
    args=[
        arg(
            "action", choices=["plan", "pack", "publish", "adopt", "push", "commit-results", "gate"]
        ),
        arg(
            "--outcome",
            choices=["success", "failure", "cancelled", "skipped", "none"],
            default="none",
            help="pack: dvc repro's outcome (success: dvc.lock and outputs too)",
        ),
        arg("--branch", help="publish: the pull request's branch"),
        arg("--head", help="publish: the commit the results were trained from"),
        arg("--bundle", help="publish: the bundle's sha256 (pack's output)"),
        arg("--remote", help="push: DVC remote (default: core.remote)"),
        arg("--local", action="store_true", help="commit-results: commit here, push nothing"),
    ],
)
def main(args: argparse.Namespace) -> int:
    if args.action == "plan":
        return plan()
    if args.action == "pack":
        return pack(args.outcome)
    if args.action == "commit-results":
        return commit_results(args.local)
    if args.action == "gate":
        return gate()
    if args.action == "publish":
        return publish(args.bundle, args.branch, args.head)
    if args.action == "adopt":
        return adopt()
    return push(args.remote)
