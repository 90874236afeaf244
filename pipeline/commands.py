"""Declaring an `llmops` command beside the function it runs.

    @command("search", help="print the notices nearest to a query in the index",
             args=[arg("query", help="text to search for"),
                   arg("-k", type=int, default=5, help="how many notices (default: 5)")])
    def main_search(args: argparse.Namespace) -> int: ...

`llmops` (pipeline/cli.py) reads declarations from the source without importing their
modules, so `llmops --help` stays instant and a module loads only when its command runs. A
declaration may use literals, `int`, `float`, `str`, `paths` (pipeline.paths) and the
module's own constants whose values are literals. A function without parameters is called
without the parsed arguments. Every stage in dvc.yaml is a command already (`llmops
<stage>` runs its module's `main()`, as `dvc repro` does): stages need no declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Arg:
    """One `argparse.ArgumentParser.add_argument(*flags, **options)`."""

    flags: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    words: tuple[str, ...]  # ("feedback", "push") is `llmops feedback push`
    help: str
    args: tuple[Arg, ...]
    target: str  # "module:function"


def command(*words: str, help: str, args: Sequence[Arg] = ()) -> Callable[[F], F]:
    """Declare `llmops <words...>` as running the decorated function."""

    def declare(func: F) -> F:
        return func

    return declare
