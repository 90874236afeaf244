#!/usr/bin/env bash
# The drift CronJob's command: yesterday's production prompts vs the training prompts in the
# index -> llm_data_drift_* gauges on the Pushgateway, which the LLMDataDrift alert reads.
# The image holds the dependencies; the code, params.yaml and the index (`dvc pull index`)
# come from GIT_REF. SCRATCH and LOGS are the mounts (defaults: /scratch, /logs).
set -euo pipefail
scratch=${SCRATCH:-/scratch}
logs=${LOGS:-/logs}

git clone --quiet --depth 1 --branch "$GIT_REF" "$GIT_URL" "$scratch/repo"
cd "$scratch/repo"
dvc pull --quiet index   # data/index: the embeddings of the training prompts

day=$(date -u -d yesterday +%F)
status=0
python -m pipeline.cli drift --logs "$logs/$day" --pushgateway "$PUSHGATEWAY_URL" || status=$?
# 1 is the verdict "drift", already pushed for the alert to fire: the job itself succeeded
if [ "$status" -gt 1 ]; then
  exit "$status"
fi
