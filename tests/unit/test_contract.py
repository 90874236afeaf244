"""dvc.yaml and the package must agree: stage names, commands, deps, params and paths."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from pipeline import paths
from pipeline.cli import COMMANDS
from pipeline.config import Params
from pipeline.deps import imports, module_file, rewrite, wanted

from ..conftest import ROOT

STAGES = ["ingest", "prepare", "validate", "base", "train", "dpo", "evaluate", "gate", "index"]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_of(stage: str) -> str:
    cmd = DVC[stage]["cmd"]
    assert cmd.startswith("python -m pipeline."), cmd
    return cmd.split()[2]


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
    needed = {str(module_file(m)) for m in imports(module, ROOT) | {module}}
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
