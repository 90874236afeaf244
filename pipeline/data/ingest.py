"""Stage `ingest`: crawl the notice sites named in params.ingest.sites into data/raw/.

Run: llmops ingest  (the same as `llmops crawl` with params.ingest.sites)

The stage is frozen in dvc.yaml, so the offline demo and CI never touch the network (and
`dvc status` stays quiet). To crawl as part of the pipeline, point params.yaml:ingest.sites
at your sites file and, in dvc.yaml, replace the stage's `frozen: true` with
`always_changed: true`: every `dvc repro` then crawls, fetching only what changed since the
last crawl, and `prepare` reruns only when the notices did change. (`dvc unfreeze ingest`
alone runs it only when the crawler's code, the sites files or params.ingest change.)
"""

from __future__ import annotations

from pipeline.data.crawl import main as crawl_main
from pipeline.io import run_stage


def main() -> int:
    return crawl_main(None)


if __name__ == "__main__":
    run_stage(main)
