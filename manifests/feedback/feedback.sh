#!/usr/bin/env bash
# The CronJob's command: yesterday's request logs -> sampled pairwise tasks -> Label Studio.
# The image holds the dependencies; the code and params.yaml come from GIT_REF (the root
# filesystem is read-only, so the package runs from the checkout instead of being installed).
set -euo pipefail

git clone --quiet --depth 1 --branch "$GIT_REF" "$GIT_URL" /scratch/repo
cd /scratch/repo
llmops() { python -m pipeline.cli "$@"; }

day=$(date -u -d yesterday +%F)
llmops feedback sample --logs "/logs/$day" --champion log --challenger "$CHALLENGER_URL" \
  --out /scratch/tasks.jsonl
llmops feedback push --tasks /scratch/tasks.jsonl
