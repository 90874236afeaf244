import re
import subprocess
import sys

import pytest
import yaml

from pipeline.config import (
    BUILTIN_BASE,
    SECTIONS,
    ParamsError,
    Section,
    TrainParams,
    load_params,
    parse_params,
    read_params_file,
    stages_own_sections,
)

from ..conftest import ROOT


def raw_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_load_with_every_section():
    p = load_params(ROOT / "params.yaml")
    assert p.model.base == BUILTIN_BASE
    assert p.train.method in ("lora", "full")
    assert p.prepare.tasks == ["classify", "extract", "title"]
    assert p.gate.min["classify.accuracy"] >= 0.85


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["train"].update(lr=1), "params.yaml:train.lr: unknown key"),
        (lambda r: r["train"]["lora"].update(rank=8), "params.yaml:train.lora.rank: unknown key"),
        (lambda r: r.update(trian={}), "params.yaml:trian: unknown key"),
        (lambda r: r["train"].update(learning_rate="2e-4"), "write exponents with a dot"),
        (
            lambda r: r["train"].update(max_steps=1.5),
            "params.yaml:train.max_steps: expected an integer",
        ),
        (
            lambda r: r["train"].update(max_steps=True),
            "params.yaml:train.max_steps: expected an integer",
        ),
        (lambda r: r["train"].update(method="qlora"), "params.yaml:train.method: must be one of"),
        (
            lambda r: r["train"].update(packing="yes"),
            "params.yaml:train.packing: expected true or false",
        ),
        (
            lambda r: r["prepare"].update(tasks=["classify", "summarize"]),
            "params.yaml:prepare.tasks[1]",
        ),
        (lambda r: r["prepare"].update(eval_fraction=1.5), "params.yaml:prepare.eval_fraction"),
        (lambda r: r["gate"]["min"].update(accuracy=0.5), "params.yaml:gate.min: 'accuracy'"),
        (
            lambda r: r["gate"].update(beat_baseline=["sources.helpdesk"]),
            "params.yaml:gate.beat_baseline: 'sources.helpdesk': expected `task.metric` or "
            "`sources.<source>.metric`",
        ),
        (
            lambda r: r["train"].update(epochs=0.0, max_steps=0),
            "params.yaml:train.epochs: must be above 0",
        ),
        (
            lambda r: r["train"].update(max_steps=-1),
            "params.yaml:train.max_steps: must be at least 0, got -1",
        ),
        (lambda r: r["evaluate"].update(max_labels=1), "params.yaml:evaluate.max_labels"),
        (
            lambda r: r["validate"].update(min_chinese_share=50),
            "params.yaml:validate.min_chinese_share",
        ),
        (
            lambda r: r["validate"].update(max_record_tokens=2),
            "params.yaml:validate.max_record_tokens",
        ),
        (
            lambda r: r["gate"]["min"].update({"classify.accuracy": "high"}),
            "params.yaml:gate.min.classify.accuracy: expected a number",
        ),
    ],
)
def test_bad_params_name_the_key(edit, message):
    raw = raw_params()
    edit(raw)
    with pytest.raises(ParamsError, match=re.escape(message)):
        parse_params(raw)


def test_int_is_accepted_where_a_float_is_expected():
    raw = raw_params()
    raw["train"]["learning_rate"] = 1
    assert parse_params(raw).train.learning_rate == 1.0


def test_target_modules_takes_a_string_or_a_list():
    raw = raw_params()
    raw["train"]["lora"]["target_modules"] = ["q_proj", "v_proj"]
    assert parse_params(raw).train.lora.target_modules == ["q_proj", "v_proj"]
    raw["train"]["lora"]["target_modules"] = 3
    with pytest.raises(ParamsError, match=re.escape("params.yaml:train.lora.target_modules")):
        parse_params(raw)


def test_a_missing_section_takes_its_defaults():
    raw = raw_params()
    del raw["evaluate"]
    assert parse_params(raw).evaluate.batch_size > 0


def llmops_params(cwd, check=False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pipeline.cli", "params"]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=check)


def test_llmops_params_prints_the_resolved_config():
    out = llmops_params(ROOT, check=True).stdout
    raw = read_params_file(ROOT / "params.yaml")
    own = {k: raw[k] for k in stages_own_sections(ROOT / "dvc.yaml") & raw.keys()}
    assert yaml.safe_load(out) == load_params(ROOT / "params.yaml").as_dict() | own


def test_bad_params_make_the_cli_exit_2_with_the_key(tmp_path):
    raw = raw_params()
    raw["train"]["learning_rate"] = "3e-3"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    proc = llmops_params(tmp_path)
    assert proc.returncode == 2
    assert "params.yaml:train.learning_rate" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train:\n  epochs: 1.0\n  batch_size: 4\n  epochs: 2.0\n",
            "params.yaml:4: duplicate key 'epochs' (first at line 2)",
        ),
        ("train: {}\ntrain: {}\n", "params.yaml:2: duplicate key 'train' (first at line 1)"),
        (
            "prepare:\n  tasks: &t [classify]\nvalidate:\n  x: *t\n",
            "params.yaml:4: YAML alias *t: aliases are not allowed",
        ),
        (  # an alias bomb: 9 levels of 9 aliases each would be 387 million strings
            "a: &a [x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            ),
            "params.yaml:2: YAML alias *a",
        ),
    ],
)
def test_params_refuse_duplicate_keys_and_aliases_naming_the_line(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value).startswith(str(tmp_path)) and message in str(err.value)


def test_every_default_is_the_shipped_params_yaml_value():
    """One value per key: a key left out of params.yaml takes its field's default, which must
    be what the shipped params.yaml says; and the shipped file names every key."""

    def flat(tree, prefix=""):
        out = {}
        for key, value in tree.items():
            if isinstance(value, dict) and key not in ("min", "max"):  # gate bounds are values
                out |= flat(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value
        return out

    own = stages_own_sections(ROOT / "dvc.yaml")  # typed by their stages' modules
    shipped = flat(
        {k: v for k, v in read_params_file(ROOT / "params.yaml").items() if k not in own}
    )
    defaults = flat(parse_params({}).as_dict())  # every key from its default
    assert sorted(set(defaults) - set(shipped)) == [], "keys params.yaml does not name"
    differ = {k: (defaults[k], v) for k, v in shipped.items() if defaults.get(k) != v}
    assert differ == {}, "key: (default, params.yaml)"


def test_every_key_has_a_one_line_help_and_llmops_params_prints_it():
    def walk(model):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no help"
            assert "\n" not in info.description, f"{model.__name__}.{name}: one line"
            if isinstance(info.annotation, type) and issubclass(info.annotation, Section):
                walk(info.annotation)

    for model in SECTIONS.values():
        walk(model)
    out = llmops_params(ROOT, check=True).stdout
    assert f"  method: full  # {TrainParams.model_fields['method'].description}\n" in out
    assert "    r: 16  # LoRA rank\n" in out  # nested sections too
