import subprocess
import sys

from pipeline.cli import COMMANDS, build_parser

from ..conftest import ROOT


def test_help_lists_every_command_without_importing_heavy_libraries():
    code = (
        "import sys, contextlib, io\n"
        "from pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'mlflow', 'dvc')\n"
        "         if m in sys.modules]\n"
        "print(out.getvalue()); print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    for words, *_ in COMMANDS:
        assert words[0] in out


def test_every_registered_command_resolves_to_a_function():
    import importlib

    for words, target, *_ in COMMANDS:
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), words


def test_nested_commands_parse():
    args = build_parser().parse_args(["data", "sample"])
    assert args.target == "pipeline.data.sample:main"
