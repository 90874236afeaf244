import importlib
import subprocess
import sys
import textwrap

import pytest

from pipeline.cli import DeclarationError, build_parser, commands, declared, stage_commands

from ..conftest import ROOT


def test_help_lists_every_command_without_importing_heavy_libraries():
    code = (
        "import sys, contextlib, io\n"
        "from pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'mlflow', 'dvc', 'fastapi')\n"
        "         if m in sys.modules]\n"
        "print(out.getvalue()); print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    every = commands()
    assert len(every) >= 30
    for cmd in every:
        assert f"\n    {cmd.words[0]} " in out or f"\n    {cmd.words[0]}\n" in out, cmd.words


def test_every_command_resolves_to_a_function_taking_the_arguments_or_nothing():
    for cmd in commands():
        module, name = cmd.target.split(":")
        func = getattr(importlib.import_module(module), name)
        assert callable(func), cmd.words
        assert func.__code__.co_argcount in (0, 1), cmd.target


def test_stages_are_commands_running_what_dvc_runs():
    assert build_parser().parse_args(["prepare"]).target == "pipeline.data.prepare:main"
    assert build_parser().parse_args(["index"]).target == "pipeline.data.index:main"


def test_a_stage_declared_with_options_takes_them_when_run_by_hand():
    args = build_parser().parse_args(["crawl", "--sites", "mine.yaml"])
    assert (args.target, args.sites) == ("pipeline.data.crawl:main", "mine.yaml")
    assert [c.words for c in commands()].count(("crawl",)) == 1


def test_declared_arguments_reach_the_function():
    args = build_parser().parse_args(["search", "exams", "-k", "3"])
    assert (args.target, args.query, args.k) == ("pipeline.data.index:main_search", "exams", 3)
    args = build_parser().parse_args(["data", "add", "x.jsonl", "--format", "prefs"])
    assert args.target == "pipeline.data.add:main"
    with pytest.raises(SystemExit):  # choices=FORMATS, the module's own constant
        build_parser().parse_args(["data", "add", "x.jsonl", "--format", "csv"])


def package(tmp_path, source: str):
    pkg = tmp_path / "pipeline"
    pkg.mkdir()
    (pkg / "thing.py").write_text(textwrap.dedent(source))
    return pkg


def test_a_declaration_may_name_paths_and_the_modules_literal_constants(tmp_path):
    pkg = package(
        tmp_path,
        """
        KINDS = ("a", "b")
        LIMIT = len(KINDS)  # not a literal, never named below

        @command("thing", "do", help="does it",
                 args=[arg("--kind", choices=KINDS), arg("--out", default=str(paths.RAW_DIR))])
        def run(args):
            return 0
        """,
    )
    (cmd,) = declared(pkg)
    assert (cmd.words, cmd.help, cmd.target) == (("thing", "do"), "does it", "pipeline.thing:run")
    assert cmd.args[0].options == {"choices": ("a", "b")}
    assert cmd.args[1].options == {"default": "data/raw"}


def test_a_declaration_naming_anything_else_is_an_error_naming_its_line(tmp_path):
    pkg = package(
        tmp_path,
        """
        import os

        @command("thing", help=os.getcwd())
        def run():
            return 0
        """,
    )
    with pytest.raises(DeclarationError, match=r"thing\.py:4: @command may use literals"):
        declared(pkg)


@pytest.mark.parametrize("text", ["", "vars: []\n", "stages: [\n", "stages:\n"])
def test_a_dvc_yaml_without_stages_leaves_the_other_commands_working(tmp_path, text):
    (tmp_path / "dvc.yaml").write_text(text)
    assert stage_commands(tmp_path / "dvc.yaml") == []


def test_a_command_declared_twice_is_an_error(tmp_path):
    pkg = package(
        tmp_path,
        """
        @command("thing", help="one")
        def one():
            return 0

        @command("thing", help="two")
        def two():
            return 0
        """,
    )
    with pytest.raises(DeclarationError, match="declared twice"):
        commands(pkg, tmp_path / "dvc.yaml")


def test_a_declaration_may_not_take_a_stages_name_for_another_function(tmp_path):
    pkg = package(
        tmp_path,
        """
        @command("prepare", help="not the stage's main")
        def other():
            return 0
        """,
    )
    (tmp_path / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: python -m pipeline.thing\n")
    with pytest.raises(DeclarationError, match="declared twice"):
        commands(pkg, tmp_path / "dvc.yaml")
