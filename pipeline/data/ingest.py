"""Stage `ingest`: crawl the notice sites named in params.ingest.sites into data/raw/.

Run: llmops ingest  (or, once unfrozen: dvc unfreeze ingest && dvc repro)

The stage is frozen in dvc.yaml, so the offline demo and CI never touch the network. To
crawl as part of the pipeline, point params.yaml:ingest.sites at your sites file and run
`dvc unfreeze ingest`; it then runs on every `dvc repro` (always_changed), fetching only
what changed since the last crawl, and `prepare` reruns only when the notices did change.
"""

from __future__ import annotations

from pipeline.data.crawl import main as crawl_main
from pipeline.io import run_stage


def main() -> int:
    return crawl_main(None)


if __name__ == "__main__":
    run_stage(main)
