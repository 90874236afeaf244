"""`llmops`: every action a person or a workflow takes, as one command line.

Each command is declared beside the function it runs (`@command`, see pipeline/commands.py),
and every stage of dvc.yaml is a command of its name running its module's `main()`, the
code `dvc repro` runs (prefer `dvc repro`: it skips what has not changed). Declarations are
read from the source, so `llmops --help` imports nothing but this and a module loads only
when its command runs.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline import paths
from pipeline.commands import Command, arg
from pipeline.io import dvc_stages

PACKAGE = Path(__file__).resolve().parent
DECLARATION = re.compile(r"^@command\(", re.MULTILINE)
DEFINITION = re.compile(r"^(?:async )?def (\w+)", re.MULTILINE)


class DeclarationError(Exception):
    """A `@command` that cannot be read without importing its module: a bug in that module."""


def declared(package: Path = PACKAGE) -> list[Command]:
    """Every `@command` under the package, in file order."""
    found: list[Command] = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if DECLARATION.search(text):
            found.extend(_read_declarations(path, text, package))
    return found


def _read_declarations(path: Path, text: str, package: Path) -> Iterator[Command]:
    module = ".".join((package.name, *path.relative_to(package).with_suffix("").parts))
    names = _ModuleNames(text)
    for match in DECLARATION.finditer(text):
        definition = DEFINITION.search(text, match.start())
        if definition is None:
            raise DeclarationError(f"{path}: @command without a function after it")
        line = text.count("\n", 0, match.start()) + 1
        source = text[match.start() : definition.start()].strip()[1:]
        try:
            words, options = eval(  # a declaration: literals, paths and the module's constants
                compile(ast.parse(source, mode="eval"), str(path), "eval"),
                {"__builtins__": {}},
                names,
            )
        except (NameError, SyntaxError, TypeError) as exc:
            raise DeclarationError(
                f"{path}:{line}: @command may use literals, int, float, str, `paths` and the "
                f"module's literal constants: {exc}"
            ) from None
        yield Command(
            words, options["help"], tuple(options.get("args", ())), f"{module}:{definition[1]}"
        )


def _as_given(*words: str, **options: object) -> tuple[tuple[str, ...], dict]:
    return words, options


class _ModuleNames(Mapping):
    """What a declaration may name: int, float, str, `paths`, and the module's constants
    whose values are literals (parsed only when a declaration names one)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._names: dict[str, object] = {
            "command": _as_given,
            "arg": arg,
            "int": int,
            "float": float,
            "str": str,
            "paths": paths,
        }
        self._parsed = False

    def __getitem__(self, name: str) -> object:
        if name not in self._names and not self._parsed:
            self._parsed = True
            for node in ast.parse(self._text).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target, value = node.target, node.value
                else:
                    continue
                if isinstance(target, ast.Name):
                    with contextlib.suppress(ValueError):  # not a literal: not for declarations
                        self._names.setdefault(target.id, ast.literal_eval(value))
        return self._names[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def stage_commands(dvc_yaml: Path = paths.DVC_YAML) -> list[Command]:
    """`llmops <stage>` for every stage of dvc.yaml whose command is `python -m pipeline...`,
    its help the stage's `desc`."""
    from pipeline.deps import stage_module

    found = []
    for name, stage in dvc_stages(dvc_yaml).items():  # a broken file: dvc says why
        module = stage_module(str(stage.get("cmd", "")))
        if module:
            summary = f"stage: {stage.get('desc', name)}"
            found.append(Command((name,), summary, (), f"{module}:main"))
    return found


def commands(package: Path = PACKAGE, dvc_yaml: Path = paths.DVC_YAML) -> list[Command]:
    """Stages first, in dvc.yaml's order, then the declared commands by name; one of each.
    A stage's `main` may be declared too, to take options when run by hand: the declaration
    is then that stage's command."""
    stages = {c.words: c for c in stage_commands(dvc_yaml)}
    chosen = dict(stages)
    for cmd in declared(package):
        known = chosen.get(cmd.words)
        if known is not None and not (
            known is stages.get(cmd.words) and known.target == cmd.target
        ):
            raise DeclarationError(
                f"`llmops {' '.join(cmd.words)}` is declared twice: {known.target}, {cmd.target}"
            )
        chosen[cmd.words] = cmd
    return [chosen[w] for w in stages] + sorted(
        (c for w, c in chosen.items() if w not in stages), key=lambda c: c.words
    )


def build_parser(every: list[Command] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmops", description=__doc__.splitlines()[0])
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    }
    for cmd in commands() if every is None else every:
        for depth in range(1, len(cmd.words)):
            prefix = cmd.words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                groups[prefix] = sub.add_subparsers(
                    dest=f"command_{depth}", metavar="COMMAND", required=True
                )
        words = cmd.words
        sub = groups[words[:-1]].add_parser(words[-1], help=cmd.help, description=cmd.help)
        for a in cmd.args:
            sub.add_argument(*a.flags, **a.options)
        sub.set_defaults(target=cmd.target)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    from pipeline.io import UserError

    try:
        return func(args) if func.__code__.co_argcount else func()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
