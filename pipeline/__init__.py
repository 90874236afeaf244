"""Flywheel: data, parameters and feedback in; safely deployed LLM versions out."""

import os

# The same CPU numbers on every x86-64 machine: MKL, ATen and oneDNN pick their code path by
# CPU, and an AVX-512 machine trains a different tiny model from an AVX2 one (different
# `dvc.lock` hashes, different gate verdicts). Pinned to AVX2, which every CI machine has,
# before torch loads. Set a variable yourself to override it (e.g. ATEN_CPU_CAPABILITY=avx512).
for _name, _value in (
    ("MKL_CBWR", "AVX2"),
    ("ATEN_CPU_CAPABILITY", "avx2"),
    ("ONEDNN_MAX_CPU_ISA", "AVX2"),
):
    os.environ.setdefault(_name, _value)
