"""`llmops deps`: each stage's code dependencies in dvc.yaml, from its imports.

A stage depends on its module and on every `pipeline/` module that module imports,
transitively, so editing any of them reruns the stage and nothing else does.
`llmops deps` rewrites the `pipeline/` lines of each stage's `deps:` to exactly that set
(kept in place and in order where they were right; missing ones appended after the last
code line, stale ones removed); the rest of dvc.yaml is left as written. `--check` only
says what differs and exits 1 (tests/unit/test_contract.py asserts the same).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

from pipeline.commands import arg, command
from pipeline.io import UserError, dvc_stages
from pipeline.paths import DVC_YAML

CODE_DEP = re.compile(r"^(?P<indent>\s+)- (?P<path>pipeline/\S+\.py)\s*(?:#.*)?$")


def module_file(module: str, root: Path = Path(".")) -> Path:
    return root / Path(*module.split(".")).with_suffix(".py")


def imports(module: str, root: Path = Path("."), seen: set[str] | None = None) -> set[str]:
    """Every pipeline module `module` imports, transitively (package __init__ files aside)."""
    seen = set() if seen is None else seen
    tree = ast.parse(module_file(module, root).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("pipeline")]
        for name in names:
            if module_file(name, root).exists() and name not in seen:
                seen.add(name)
                imports(name, root, seen)
    return seen


def stage_module(cmd: str) -> str | None:
    """`pipeline.x.y` of a `python -m pipeline.x.y ...` command, else None."""
    words = cmd.split()
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2].startswith("pipeline."):
        return words[2]
    return None


def wanted(root: Path = Path(".")) -> dict[str, list[str]]:
    """{stage: its module's file first, then every module it imports, sorted}."""
    out = {}
    for name, stage in dvc_stages(root / DVC_YAML).items():
        module = stage_module(str(stage.get("cmd", "")))
        if module is None:
            continue
        own = module_file(module).as_posix()
        out[name] = [own, *sorted(module_file(m).as_posix() for m in imports(module, root))]
    return out


def rewrite(text: str, want: dict[str, list[str]]) -> tuple[str, dict[str, tuple[set, set]]]:
    """dvc.yaml's text with each stage's code deps set to `want`; {stage: (added, removed)}."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    changes: dict[str, tuple[set, set]] = {}
    stage: str | None = None
    in_deps = False
    last_code = -1
    kept: set[str] = set()

    def close() -> None:
        nonlocal last_code
        if stage is not None and stage in want and in_deps:
            missing = [p for p in want[stage] if p not in kept]
            indent = "      "
            if missing:
                at = last_code + 1 if last_code >= 0 else len(out)
                out[at:at] = [f"{indent}- {p}\n" for p in missing]
            removed = changes.get(stage, (set(), set()))[1]
            if missing or removed:
                changes[stage] = (set(missing), removed)
        last_code = -1

    for line in lines:
        header = re.match(r"^  (\w[\w-]*):\s*$", line)
        if header or re.match(r"^\S", line):
            close()
            kept = set()
            in_deps = False
            stage = header.group(1) if header else None
        elif re.match(r"^    deps:\s*$", line):
            in_deps = True
        elif in_deps and re.match(r"^    \w", line):
            close()
            in_deps = False
        elif in_deps and stage is not None and stage in want and (m := CODE_DEP.match(line)):
            path = m.group("path")
            if path not in want[stage] or path in kept:
                changes.setdefault(stage, (set(), set()))[1].add(path)
                continue
            kept.add(path)
            out.append(line)
            last_code = len(out) - 1
            continue
        out.append(line)
    close()
    return "".join(out), changes


@command(
    "deps",
    help="set each stage's code deps in dvc.yaml to what its module imports",
    args=[arg("--check", action="store_true", help="only report; exit 1 if any differ")],
)
def main(args: argparse.Namespace) -> int:
    if not DVC_YAML.exists():
        raise UserError(f"{DVC_YAML}: not found (run from the repository root)")
    text = DVC_YAML.read_text(encoding="utf-8")
    new, changes = rewrite(text, wanted())
    for stage, (added, removed) in sorted(changes.items()):
        for path in sorted(added):
            print(f"deps: {stage}: + {path}")
        for path in sorted(removed):
            print(f"deps: {stage}: - {path}")
    if args.check:
        differ = f"{len(changes)} stage(s) differ from their imports"
        print(f"deps: {differ if changes else 'every stage lists exactly what it imports'}")
        return 1 if changes else 0
    if new == text:
        print(f"deps: {DVC_YAML} already lists exactly what each stage imports")
        return 0
    DVC_YAML.write_text(new, encoding="utf-8")
    print(f"deps: {len(changes)} stage(s) rewritten in {DVC_YAML}; run `dvc repro`")
    return 0
