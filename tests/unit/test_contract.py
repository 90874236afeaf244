"""dvc.yaml and the package must agree: stage names, commands, deps, params and paths."""

import ast
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from pipeline import paths
from pipeline.cli import COMMANDS
from pipeline.config import Params

from ..conftest import ROOT

STAGES = ["ingest", "prepare", "validate", "base", "train", "dpo", "evaluate", "gate", "index"]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_of(stage: str) -> str:
    cmd = DVC[stage]["cmd"]
    assert cmd.startswith("python -m pipeline."), cmd
    return cmd.split()[2]


def module_file(module: str) -> Path:
    return Path(*module.split(".")).with_suffix(".py")


def pipeline_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """Every pipeline module `module` imports, transitively (package __init__ files aside)."""
    seen = set() if seen is None else seen
    tree = ast.parse((ROOT / module_file(module)).read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("pipeline")]
        for name in names:
            if (ROOT / module_file(name)).exists() and name not in seen:
                seen.add(name)
                pipeline_imports(name, seen)
    return seen


def test_stages_are_the_pipeline_in_order():
    assert list(DVC) == STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_stage_module_is_named_after_the_stage(stage):
    module = module_of(stage)
    assert module.rsplit(".", 1)[1] == stage
    assert (ROOT / module_file(module)).exists()


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_the_module_and_everything_it_imports(stage):
    module = module_of(stage)
    code_deps = {d for d in DVC[stage]["deps"] if d.startswith("pipeline/")}
    needed = {str(module_file(m)) for m in pipeline_imports(module) | {module}}
    assert "pipeline/config.py" in needed
    assert needed == code_deps, f"missing {needed - code_deps}, extra {code_deps - needed}"


@pytest.mark.parametrize("stage", STAGES)
def test_params_name_real_sections_and_keys(stage):
    sections = typing.get_type_hints(Params)
    for entry in DVC[stage].get("params", []):
        section, _, key = entry.partition(".")
        assert section in sections, entry
        if key:
            assert key in {f.name for f in dataclasses.fields(sections[section])}, entry


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_cli_command_running_the_same_main(stage):
    targets = {words: target for words, target, *_ in COMMANDS}
    assert targets[(stage,)] == f"{module_of(stage)}:main"


def test_dvc_outputs_are_the_paths_the_package_writes():
    declared = set()
    for stage in DVC.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                declared.add(next(iter(out)) if isinstance(out, dict) else out)
    package = {str(v) for k, v in vars(paths).items() if k.isupper() and isinstance(v, Path)}
    assert declared <= package, declared - package
    for name in (
        "PREPARED_DIR",
        "BASE_DIR",
        "SFT_DIR",
        "ADAPTER_DIR",
        "TRAIN_METRICS",
        "DPO_METRICS",
        "EVAL_METRICS",
        "GATE_METRICS",
        "VALIDATE_METRICS",
        "LOSS_CURVE",
        "CONFUSION_DIR",
        "PREDICTIONS",
        "INDEX_DIR",
        "INDEX_METRICS",
    ):
        assert str(getattr(paths, name)) in declared, name


def test_metrics_are_small_files_kept_in_git():
    for stage in DVC.values():
        for entry in stage.get("metrics", []) + stage.get("plots", []):
            ((path, opts),) = entry.items()
            assert opts.get("cache") is False, path
