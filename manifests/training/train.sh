#!/usr/bin/env bash
# Runs in every pod of the PyTorchJob. The operator sets WORLD_SIZE (pods), RANK (this pod,
# the master is 0), MASTER_ADDR and MASTER_PORT.
set -euo pipefail

git clone --quiet "$GIT_URL" /scratch/repo
cd /scratch/repo
git checkout --quiet "$GIT_REF"
python -m pip install --quiet --no-deps -e .

if ! python -c 'import sys; from pipeline.config import load_params
sys.exit(load_params().train.launcher != "accelerate")'; then
  echo "error: set params.yaml train.launcher: accelerate (and train.accelerate_config:" \
       "configs/accelerate/ddp.yaml, fsdp.yaml or zero3.yaml) to train on a cluster" >&2
  exit 2
fi

dvc pull --quiet prepare base   # the train stage's inputs
export LLMOPS_ACCELERATE_ARGS="--num_machines $WORLD_SIZE --machine_rank $RANK \
--main_process_ip $MASTER_ADDR --main_process_port $MASTER_PORT \
--num_processes $((WORLD_SIZE * GPUS_PER_NODE))"

if [ "$RANK" = 0 ]; then
  dvc repro --single-item train   # writes models/sft, metrics/train.json and the MLflow run
  dvc push --run-cache train
  echo "train: pushed; fetch with: dvc pull --run-cache && dvc repro"
else
  python -m pipeline.train.train  # rank > 0: trains its share, rank 0 writes
fi
