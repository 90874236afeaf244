"""dvc.yaml and the package must agree: stage names, commands, deps, params and paths."""

import importlib
import typing
from pathlib import Path

import pytest
import yaml

from pipeline import paths
from pipeline.cli import build_parser
from pipeline.config import Params, stages_own_sections
from pipeline.deps import imports, module_file, rewrite, stage_module, wanted

from ..conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
STAGES = list(DVC)


def module_of(stage: str) -> str:
    module = stage_module(DVC[stage]["cmd"])
    assert module, DVC[stage]["cmd"]
    return module


def test_stages_are_listed_in_pipeline_order():
    """No stage reads what a stage listed after it writes."""
    for i, (stage, spec) in enumerate(DVC.items()):
        later = {out: other for other in STAGES[i + 1 :] for out in outputs(DVC[other])}
        for dep in spec.get("deps", []):
            for out, other in later.items():
                inside = dep == out or dep.startswith(out + "/") or out.startswith(dep + "/")
                assert not inside, f"{stage} reads {dep}, written by {other}, listed after it"


def outputs(spec: dict) -> list[str]:
    return [
        next(iter(o)) if isinstance(o, dict) else o
        for kind in ("outs", "metrics", "plots")
        for o in spec.get(kind, [])
    ]


@pytest.mark.parametrize("stage", STAGES)
def test_stage_module_is_named_after_the_stage(stage):
    module = module_of(stage)
    assert module.rsplit(".", 1)[1] == stage
    assert (ROOT / module_file(module)).exists()


@pytest.mark.parametrize("stage", STAGES)
def test_deps_list_the_module_and_everything_it_imports(stage):
    module = module_of(stage)
    code_deps = {d for d in DVC[stage]["deps"] if d.startswith("pipeline/")}
    needed = {str(module_file(m)) for m in imports(module, ROOT) | {module}}
    assert "pipeline/config.py" in needed
    assert needed == code_deps, f"missing {needed - code_deps}, extra {code_deps - needed}"


@pytest.mark.parametrize("stage", STAGES)
def test_params_name_real_sections_and_keys(stage):
    sections = typing.get_type_hints(Params)
    for entry in DVC[stage].get("params", []):
        section, _, key = entry.partition(".")
        if section == stage and section in stages_own_sections(ROOT / "dvc.yaml"):
            continue  # the stage's own section, typed in its module
        assert section in sections, entry
        if key:
            assert key in sections[section].model_fields, entry


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_a_cli_command_running_the_same_main(stage):
    assert build_parser().parse_args([stage]).target == f"{module_of(stage)}:main"


def test_dvc_outputs_are_the_paths_the_package_writes():
    declared = set()
    for stage in DVC.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                declared.add(next(iter(out)) if isinstance(out, dict) else out)
    package = path_constants(paths)
    for stage in STAGES:  # and the paths a stage alone writes, named in its module
        package |= path_constants(importlib.import_module(module_of(stage)))
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


def path_constants(module) -> set[str]:
    return {str(v) for k, v in vars(module).items() if k.isupper() and isinstance(v, Path)}


def test_metrics_are_small_files_kept_in_git():
    for stage in DVC.values():
        for entry in stage.get("metrics", []) + stage.get("plots", []):
            ((path, opts),) = entry.items()
            assert opts.get("cache") is False, path


def test_llmops_deps_leaves_the_shipped_dvc_yaml_as_it_is_and_repairs_a_broken_one():
    text = (ROOT / "dvc.yaml").read_text()
    want = wanted(ROOT)
    assert rewrite(text, want) == (text, {})
    broken = text.replace("      - pipeline/data/records.py\n", "", 1).replace(
        "      - pipeline/evaluate/gate.py\n",
        "      - pipeline/evaluate/gate.py\n      - pipeline/data/crawl.py\n",
        1,
    )
    repaired, changes = rewrite(broken, want)
    assert changes == {
        "prepare": ({"pipeline/data/records.py"}, set()),
        "gate": (set(), {"pipeline/data/crawl.py"}),
    }

    def deps(t):
        return {n: set(st.get("deps", [])) for n, st in yaml.safe_load(t)["stages"].items()}

    assert deps(repaired) == deps(text)
    assert rewrite(repaired, want) == (repaired, {})
