"""`llmops champion set`: make the current evaluation the baseline the gate compares against."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.io import UserError, read_jsonl
from pipeline.paths import CHAMPION_PREDICTIONS, PREDICTIONS


def set_champion(source: Path = PREDICTIONS, dest: Path = CHAMPION_PREDICTIONS) -> int:
    """Copy `source` (per-example predictions) to `dest`; returns the number of examples."""
    if not source.exists():
        raise UserError(f"{source}: not found; run `dvc repro evaluate` first")
    rows = read_jsonl(source)  # refuse a file the gate could not read
    missing = [k for k in ("id", "task", "reference", "prediction") if rows and k not in rows[0]]
    if not rows or missing:
        raise UserError(f"{source}: not per-example predictions (missing {missing or 'rows'})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return len(rows)


@command(
    "champion",
    "set",
    help="make an evaluation the baseline the gate compares against",
    args=[
        arg(
            "--source",
            default=str(paths.PREDICTIONS),
            help="per-example predictions (default: the current evaluation)",
        )
    ],
)
def main(args: argparse.Namespace) -> int:
    n = set_champion(Path(args.source))
    print(
        f"champion: {n} examples from {args.source} -> {CHAMPION_PREDICTIONS}; commit it, and "
        "the gate compares every candidate against it"
    )
    return 0
