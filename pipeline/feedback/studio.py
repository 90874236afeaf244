"""Label Studio: push sampled tasks to a pairwise-comparison project, pull the judgements back
as preference pairs.

    export LABEL_STUDIO_URL=https://label.example.org LABEL_STUDIO_API_KEY=...
    llmops feedback push            # reports/feedback/tasks.jsonl -> the project (idempotent)
    llmops feedback pull            # completed annotations -> data/feedback/prefs.jsonl

`push` creates the project named by `params.feedback.project` (or updates its labeling
config) and imports only the tasks whose `feedback_id` the project does not hold yet, so a
re-run creates no duplicates. `pull` exports every task with its annotations, turns the
votes into pairs (pipeline/feedback/votes.py) and merges them into the prefs file, which the
dpo stage depends on: the next `dvc repro` trains on them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.data.prefs import check_pair, load_pairs
from pipeline.feedback.votes import merge, read_raw_pairs, to_pairs
from pipeline.io import DataError, UserError, iter_jsonl, write_jsonl

# Pairwise names the better answer (left or right); "Both equal" is a tie; the rating and
# the correction are optional.
LABEL_CONFIG = """\
<View>
  <Header value="Which answer to the request is better?"/>
  <Text name="prompt" value="$prompt"/>
  <View style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 1em">
    <Text name="left" value="$left"/>
    <Text name="right" value="$right"/>
  </View>
  <Pairwise name="preference" toName="left,right"/>
  <Choices name="equal" toName="prompt" showInline="true">
    <Choice value="Both equal"/>
  </Choices>
  <Header value="Optional: how good is the better answer (1-5), and what should it say?" size="6"/>
  <Rating name="rating" toName="prompt" maxRating="5"/>
  <TextArea name="correction" toName="prompt" rows="3" maxSubmissions="1" editable="true"
            placeholder="The answer as it should be"/>
</View>
"""


def connect() -> Any:
    """A client for the server named by LABEL_STUDIO_URL, authenticated by
    LABEL_STUDIO_API_KEY (never printed)."""
    url, key = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_API_KEY")
    if not url or not key:
        raise UserError(
            "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (Label Studio: Account & Settings >"
            " Access Token) and rerun"
        )
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=url, api_key=key)


@contextlib.contextmanager
def server_errors() -> Iterator[None]:
    """A refused connection or an error answer becomes one line saying what to check."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    url = os.environ.get("LABEL_STUDIO_URL")
    try:
        yield
    except ApiError as exc:
        hint = (
            "check LABEL_STUDIO_API_KEY (a personal access token, or the legacy token)"
            if exc.status_code in (401, 403)
            else str(exc.body)[:300]
        )
        raise UserError(f"Label Studio at {url} answered {exc.status_code}: {hint}") from None
    except httpx.HTTPError as exc:
        raise UserError(
            f"Label Studio at {url} is unreachable ({exc}): check LABEL_STUDIO_URL"
        ) from None


def find_project(ls: Any, title: str) -> Any | None:
    """The oldest project with this exact title, or None."""
    found = [p for p in ls.projects.list(title=title) if p.title == title]
    return min(found, key=lambda p: p.id) if found else None


def ensure_project(ls: Any, title: str) -> tuple[Any, str]:
    """The project, created or with its labeling config brought up to date; and which."""
    project = find_project(ls, title)
    if project is None:
        project = ls.projects.create(
            title=title,
            description="Pairwise comparison of sampled answers (llmops feedback push)",
            label_config=LABEL_CONFIG,
        )
        return project, "created"
    if (project.label_config or "").strip() != LABEL_CONFIG.strip():
        project = ls.projects.update(id=project.id, label_config=LABEL_CONFIG)
        return project, "updated"
    return project, "unchanged"


def export_tasks(ls: Any, project_id: int) -> list[dict]:
    """Every task of the project, annotated or not, with its annotations (Label Studio's
    JSON export)."""
    chunks = ls.projects.exports.download_sync(
        project_id, export_type="JSON", download_all_tasks=True
    )
    body = chunks if isinstance(chunks, bytes) else b"".join(chunks)
    return json.loads(body or b"[]")


def read_tasks(path: Path) -> list[dict]:
    """Sampled tasks (`llmops feedback sample`'s output), each with a feedback_id."""
    if not path.exists():
        raise DataError(path, None, "no sampled tasks: run `llmops feedback sample` first")
    tasks = []
    for line, task in iter_jsonl(path):
        for key in ("feedback_id", "prompt", "left", "right"):
            if not isinstance(task.get(key), str) or not task[key]:
                raise DataError(path, line, f"`{key}` must be a non-empty string")
        tasks.append(task)
    return tasks


def push(ls: Any, tasks: list[dict], title: str) -> dict:
    """Import the tasks the project does not hold yet (by feedback_id); never a duplicate."""
    project, state = ensure_project(ls, title)
    have = {t["data"].get("feedback_id") for t in export_tasks(ls, project.id)}
    new, seen = [], set(have)
    for task in tasks:
        if task["feedback_id"] not in seen:
            seen.add(task["feedback_id"])
            new.append({"data": task})
    if new:
        ls.projects.import_tasks(id=project.id, request=new)
    return {
        "project_id": project.id,
        "project": state,
        "imported": len(new),
        "already_there": len(tasks) - len(new),
    }


def pull(ls: Any, title: str, prefs: Path, corrections: bool) -> dict:
    """Merge the project's judged tasks into `prefs`; return the counts."""
    project = find_project(ls, title)
    if project is None:
        raise UserError(f"no Label Studio project titled {title!r}: run `llmops feedback push`")
    pulled, counts, judged = to_pairs(export_tasks(ls, project.id), corrections)
    for i, pair in enumerate(pulled, 1):
        check_pair(pair, Path(f"<label studio project {project.id}>"), i)
    load_pairs(prefs)  # the file as it is must be valid: a merge never hides a broken line
    merged, change = merge(read_raw_pairs(prefs), pulled, judged)
    if change["new"] or change["updated"] or change["removed"]:
        write_jsonl(prefs, merged)
    return {"project_id": project.id, **counts, **change}


@command(
    "feedback",
    "push",
    help="import sampled tasks into the Label Studio project (no duplicates)",
    args=[
        arg("--tasks", help=f"tasks file (default: {paths.FEEDBACK_TASKS})"),
        arg("--project", help="project title (default: feedback.project)"),
    ],
)
def main_push(args) -> int:
    from pipeline.config import load_params
    from pipeline.paths import FEEDBACK_TASKS

    p = load_params().feedback
    tasks = read_tasks(Path(args.tasks or FEEDBACK_TASKS))
    title = args.project or p.project
    with server_errors():
        s = push(connect(), tasks, title)
    print(
        f"feedback push: project {title!r} (id {s['project_id']}, {s['project']}):"
        f" {s['imported']} tasks imported, {s['already_there']} already there"
    )
    return 0


@command(
    "feedback",
    "pull",
    help="merge completed annotations into the preference pairs the dpo stage trains on",
    args=[
        arg("--out", help=f"prefs file (default: {paths.PREFS_FILE})"),
        arg("--project", help="project title (default: feedback.project)"),
    ],
)
def main_pull(args) -> int:
    from pipeline.config import load_params
    from pipeline.paths import PREFS_FILE

    p = load_params().feedback
    title = args.project or p.project
    out = Path(args.out or PREFS_FILE)
    with server_errors():
        s = pull(connect(), title, out, p.corrections)
    print(
        f"feedback pull: project {title!r} (id {s['project_id']}): {s.get('pair', 0)} pairs,"
        f" {s.get('correction', 0)} corrections, {s.get('tie', 0)} ties dropped,"
        f" {s.get('unannotated', 0)} tasks awaiting annotation"
        + (f", {s['no_choice']} judged without a choice" if s.get("no_choice") else "")
        + f"; {out}: {s['new']} new,"
        f" {s['updated']} updated, {s['removed']} removed, {s['total']} pairs in all"
    )
    return 0
