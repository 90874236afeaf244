"""`llmops params`: print params.yaml as the loader resolved it (defaults filled in)."""

from __future__ import annotations

import yaml

from pipeline.config import load_params


def show() -> int:
    print(yaml.safe_dump(load_params().as_dict(), allow_unicode=True, sort_keys=False), end="")
    return 0
