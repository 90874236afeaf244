"""`llmops params`: print params.yaml as the loader resolved it (defaults filled in)."""

from __future__ import annotations

import yaml

from pipeline.commands import command
from pipeline.config import load_params, read_params_file, stages_own_sections


@command("params", help="print the resolved params.yaml")
def show() -> int:
    resolved = load_params().as_dict()
    raw = read_params_file()
    for section in sorted(stages_own_sections() & raw.keys()):
        resolved[section] = raw[section]  # typed by its stage's own module
    print(yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False), end="")
    return 0
