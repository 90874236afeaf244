"""`llmops params`: params.yaml as the loader resolved it (defaults filled in), each key with
its one-line help from the schema (pipeline/config.py)."""

from __future__ import annotations

import yaml

from pipeline.commands import command
from pipeline.config import SECTIONS, Section, load_params, read_params_file, stages_own_sections


@command("params", help="print the resolved params.yaml, each key with its help")
def show() -> int:
    params = load_params()
    lines = []
    for name in SECTIONS:
        lines.append(f"{name}:")
        lines += described(getattr(params, name), "  ")
    raw = read_params_file()
    for section in sorted(stages_own_sections() & raw.keys()):  # typed by its stage's module
        lines.append(yaml.safe_dump({section: raw[section]}, allow_unicode=True).rstrip())
    print("\n".join(lines))
    return 0


def described(section: Section, indent: str) -> list[str]:
    """`key: value  # help` lines, values in YAML flow style, nested sections indented."""
    lines = []
    for name, info in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, Section):
            lines.append(f"{indent}{name}:  # {info.description}")
            lines += described(value, indent + "  ")
            continue
        text = yaml.safe_dump(
            value, default_flow_style=True, width=10**6, allow_unicode=True, sort_keys=False
        )
        lines.append(
            f"{indent}{name}: {text.removesuffix('...' + chr(10)).strip()}  # {info.description}"
        )
    return lines
