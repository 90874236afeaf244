"""params.yaml's schema: the one place each key's type, bounds, default and help live.

Each stage has a section of the same name, a frozen pydantic model whose fields carry their
type, their bounds and a one-line help (`llmops params` prints each value with it). Unknown
keys and wrong types are errors that name `params.yaml:section.key`; nothing is coerced or
guessed (PyYAML reads `2e-4` as a string, so that is an error telling you to write
`2.0e-4`). A key left out takes its field's default, which is always the shipped
params.yaml's value: one value per key (tests/unit/test_config.py fails when the two differ).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import annotated_types
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.io import UserError, dvc_stages
from pipeline.paths import DVC_YAML, PARAMS

BUILTIN_BASE = "builtin:tiny"
TASKS = ("classify", "extract", "title")
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


class ParamsError(UserError):
    """A params.yaml problem, always naming the file and the dotted key."""


class Section(BaseModel):
    """A params.yaml section: frozen, strict (no coercion), unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


S = TypeVar("S", bound="Section")


def _help(text: str, default: Any = ..., **bounds: Any) -> Any:
    return Field(default, description=text, **bounds)


def _helps(text: str, factory: typing.Callable[[], Any]) -> Any:
    return Field(default_factory=factory, description=text)


class PrepareParams(Section):
    eval_fraction: float = _help(
        "share of notices held out, chosen by a hash of the notice id", 0.2, gt=0, lt=1
    )
    split_salt: str = _help(
        "changing it draws a different (still deterministic) split", "flywheel-v1"
    )
    tasks: list[Literal["classify", "extract", "title"]] = _helps(
        "the instruction tasks made from each notice", lambda: list(TASKS)
    )
    scrub_pii: bool = _help(
        "replace phones, e-mails, ID and student numbers with <PHONE> ...", True
    )
    student_number_pattern: str = _help(
        "your university's student numbers, as a regex; empty scrubs none",
        r"(?:19|20)\d{8}(?:\d{2})?",
    )
    near_dup_threshold: float = _help(
        "character-shingle Jaccard at which notices are near-duplicates (MinHash LSH)",
        0.8,
        gt=0,
        le=1,
    )
    shingle_size: int = _help("characters per shingle", 5, ge=1)
    minhash_perm: int = _help(
        "hashes per MinHash signature; LSH bands give 99% recall at the threshold", 64, ge=16
    )


class CrawlParams(Section):
    sites: str = _help("the crawler's sites file (llmops crawl)", "configs/sites/example.yaml")


class ValidateParams(Section):
    min_body_chars: int = _help("shortest notice body accepted", 20, ge=0)
    max_body_chars: int = _help("longest notice body accepted", 2000, ge=1)
    min_notices_per_category: int = _help("fewer notices in a category fails validation", 20, ge=0)
    min_eval_records_per_task: int = _help(
        "fewer held-out records of a task fails validation", 10, ge=0
    )
    min_chinese_share: float = _help(
        "CJK characters over CJK + Latin letters in a body", 0.5, ge=0, le=1
    )
    min_record_tokens: int = _help(
        "estimated tokens of prompt + completion (no tokenizer yet), at least", 4, ge=0
    )
    max_record_tokens: int = _help(
        "... and at most; keep it at or under train.max_length", 384, ge=0
    )


class ModelParams(Section):
    base: str = _help(
        "builtin:tiny builds a small model; else a Hugging Face id or local path", BUILTIN_BASE
    )


class BaseParams(Section):
    """The built-in tiny model and its continued pre-training (used when model.base is builtin)."""

    vocab_size: int = _help("tokenizer vocabulary, trained on the notices", 3000, ge=300)
    hidden_size: int = _help("model width", 192, ge=8)
    intermediate_size: int = _help("MLP width", 512, ge=8)
    num_layers: int = _help("transformer layers", 3, ge=1)
    num_heads: int = _help("attention heads; hidden_size must divide by it", 4, ge=1)
    max_position_embeddings: int = _help("longest sequence the model takes", 512, ge=16)
    steps: int = _help("continued pre-training steps on the train notices", 200, ge=0)
    batch_size: int = _help("sequences per pre-training step", 16, ge=1)
    learning_rate: float = _help("pre-training learning rate", 2.0e-3, gt=0)
    max_length: int = _help("tokens per pre-training sequence", 384, ge=8)
    seed: int = _help("seed of the initial weights and the data order", 0)


class LoraParams(Section):
    r: int = _help("LoRA rank", 16, ge=1)
    alpha: int = _help("LoRA scaling numerator (scale = alpha / r)", 32, ge=1)
    dropout: float = _help("dropout on the LoRA input", 0.05, ge=0, lt=1)
    target_modules: str | list[str] = _help(
        "modules that get LoRA matrices: all-linear or a list of names", "all-linear"
    )
    modules_to_save: list[str] = _helps(
        "trained fully beside the LoRA matrices, e.g. [lm_head]", list
    )


class TrainParams(Section):
    method: Literal["lora", "full"] = _help(
        "lora for real models; full on the built-in tiny base (make bench compares them)", "full"
    )
    epochs: float = _help("passes over the training records (the steps follow the rows)", 6.5)
    max_steps: int = _help("> 0: exactly this many steps instead of epochs (quick tries)", 0, ge=0)
    batch_size: int = _help("records per device per step", 16, ge=1)
    grad_accum: int = _help("steps accumulated per optimizer update", 1, ge=1)
    learning_rate: float = _help("peak learning rate", 1.0e-3, gt=0)
    lr_scheduler: str = _help("transformers' scheduler name", "cosine")
    warmup_ratio: float = _help("share of the steps spent warming up", 0.05, ge=0, lt=1)
    max_length: int = _help("tokens per record; longer ones are truncated", 384, ge=8)
    packing: bool = _help("pack records into full sequences (slower on CPU: make bench)", False)
    gradient_checkpointing: bool = _help(
        "trade ~30% more compute for activation memory (big models on GPUs)", False
    )
    save_steps: int = _help(
        "checkpoint every N steps (0: never); a killed run resumes there", 100, ge=0
    )
    seed: int = _help("seed of the data order and the new weights", 0)
    lora: LoraParams = _helps("the adapter, when method is lora", LoraParams)
    launcher: Literal["python", "accelerate"] = _help(
        "python: this process; accelerate: accelerate launch (also for dpo)", "python"
    )
    accelerate_config: str = _help(
        "accelerate's config (configs/accelerate/: cpu, ddp, fsdp, zero3)",
        "configs/accelerate/cpu.yaml",
    )
    precision: Literal["auto", "bf16", "fp16", "fp32"] = _help(
        "auto: bf16 on GPUs that have it, else fp16 on GPUs, fp32 on CPU", "auto"
    )


class DpoParams(Section):
    """Preference tuning on data/feedback/prefs.jsonl, LoRA on top of the SFT model."""

    enabled: bool = _help("false: the SFT model passes through unchanged", True)
    beta: float = _help("DPO's beta: how far from the SFT reference the policy may move", 0.3, gt=0)
    loss_type: str = _help("any of TRL's DPO losses: sigmoid, ipo, hinge, robust, ...", "sigmoid")
    sft_weight: float = _help(
        "weight of the chosen answer's NLL beside the preference loss (RPO); 0: none", 1.0, ge=0
    )
    max_steps: int = _help("DPO steps", 200, ge=1)
    batch_size: int = _help("pairs per device per step", 8, ge=1)
    grad_accum: int = _help("steps accumulated per optimizer update", 1, ge=1)
    learning_rate: float = _help("peak learning rate", 1.0e-3, gt=0)
    lr_scheduler: str = _help("transformers' scheduler name", "cosine")
    warmup_ratio: float = _help("share of the steps spent warming up", 0.1, ge=0, lt=1)
    max_length: int = _help("tokens per prompt + answer", 384, ge=8)
    seed: int = _help("seed of the data order and the new weights", 0)
    lora: LoraParams = _helps(
        "the adapter, on top of the SFT model (the frozen reference)",
        lambda: LoraParams(dropout=0.0),
    )


class EvaluateParams(Section):
    batch_size: int = _help("prompts generated together", 32, ge=1)
    max_new_tokens: int = _help("longest answer generated", 32, ge=1)
    length_buckets: list[int] = _helps(
        "prompt lengths (characters) where the `length` slices split", lambda: [110, 140]
    )
    max_labels: int = _help(
        "an added dataset with at most this many answers (each seen twice) is classification",
        20,
        ge=2,
    )


class GateParams(Section):
    min: dict[str, float] = _helps(
        "metric (eval.json path) -> the least the fine-tuned model must reach",
        lambda: {
            "classify.accuracy": 0.85,
            "extract.exact_match": 0.25,
            "title.rouge_l": 0.4,
            "behaviour.invariance": 0.85,
            "behaviour.must_pass_classify": 0.8,
        },
    )
    max: dict[str, float] = _helps("metric -> the most it may reach (latency, say)", dict)
    beat_base: list[str] = _helps(
        "metrics on which it must beat the untuned base",
        lambda: ["classify.accuracy", "extract.exact_match", "title.rouge_l", "title.bleu"],
    )
    beat_baseline: list[str] = _helps(
        "metrics on which it must beat the cheap baseline (bootstrap interval above 0)",
        lambda: ["extract.exact_match"],
    )
    no_regression: list[str] = _helps(
        "metrics that must not regress against the champion (interval below -tolerance)",
        lambda: ["classify.accuracy", "extract.exact_match", "title.rouge_l"],
    )
    tolerance: float = _help("a regression smaller than this is noise", 0.02, ge=0)
    bootstrap_samples: int = _help("paired-bootstrap resamples", 1000, ge=100)
    confidence: float = _help("of the bootstrap intervals", 0.95, ge=0.5, lt=1)
    require_validation: bool = _help("fail the gate when validate failed", True)


class MlflowParams(Section):
    experiment: str = _help("the MLflow experiment runs are logged to", "flywheel")
    registered_model: str = _help(
        "the MLflow registered model releases are versions of", "flywheel-notices"
    )


class ReleaseParams(Section):
    servable_check: bool = _help(
        "promote --push refuses what vLLM cannot serve; false only to rehearse with builtin:tiny",
        True,
    )


class FeedbackParams(Section):
    """Request logs -> Label Studio -> preference pairs (`llmops feedback sample|push|pull`)."""

    sample_size: int = _help("tasks per `llmops feedback sample` (--n overrides)", 50, ge=1)
    strata: list[str] = _helps(
        "record fields drawn from in turn, so rare values are seen too",
        lambda: ["model_version", "task", "confidence"],
    )
    low_confidence: float = _help(
        "`confidence` below this is a low-confidence answer", 0.5, ge=0, le=1
    )
    seed: int = _help("seed of the draw", 0)
    champion: str = _help("who answers first: log, an endpoint URL or a model directory", "log")
    challenger: str = _help("who answers second: the same choices", "models/adapter")
    max_new_tokens: int = _help("longest answer for offline generation and endpoints", 64, ge=1)
    project: str = _help("the Label Studio project title", "Flywheel: which answer is better?")
    corrections: bool = _help(
        "a free-text correction becomes a pair over the answer it fixes", True
    )


class IndexParams(Section):
    """Sentence embeddings of notices and training prompts in a persistent Chroma index."""

    model: str = _help(
        "sentence-transformers model: all-MiniLM-L6-v2 (offline), a HF id or a local path",
        "all-MiniLM-L6-v2",
    )
    batch_size: int = _help("sentences per encode call and per Chroma upsert", 64, ge=1)
    reference_prompts: int = _help(
        "training prompts kept as the drift reference, by id hash (0: all)", 400, ge=0
    )


class DriftParams(Section):
    """`llmops drift`: recent prompts vs the indexed training prompts, per principal component."""

    components: int = _help("principal components of the reference the statistics use", 5, ge=1)
    bins: int = _help("PSI bins: quantiles of the reference projections", 10, ge=2)
    psi_threshold: float = _help(
        "drift above this aggregate PSI (the alert uses 0.2 too)", 0.2, gt=0
    )
    aggregate: Literal["max", "mean"] = _help("over the components", "mean")
    ks_pvalue: float = _help("KS drift: Bonferroni-corrected p below this ...", 0.001, gt=0, lt=1)
    ks_statistic: float = _help("... and KS statistic (effect size) above this", 0.2, ge=0, le=1)
    min_samples: int = _help(
        "fewer recent prompts: insufficient_data (PSI noise alone is ~(bins-1)/n)", 200, ge=1
    )
    max_samples: int = _help("the most recent prompts compared", 1000, ge=1)


@dataclass(frozen=True)
class Params:
    """Every section of params.yaml, typed."""

    prepare: PrepareParams = field(default_factory=PrepareParams)
    validate: ValidateParams = field(default_factory=ValidateParams)
    model: ModelParams = field(default_factory=ModelParams)
    base: BaseParams = field(default_factory=BaseParams)
    train: TrainParams = field(default_factory=TrainParams)
    dpo: DpoParams = field(default_factory=DpoParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    gate: GateParams = field(default_factory=GateParams)
    mlflow: MlflowParams = field(default_factory=MlflowParams)
    index: IndexParams = field(default_factory=IndexParams)
    drift: DriftParams = field(default_factory=DriftParams)
    crawl: CrawlParams = field(default_factory=CrawlParams)
    feedback: FeedbackParams = field(default_factory=FeedbackParams)
    release: ReleaseParams = field(default_factory=ReleaseParams)

    def as_dict(self) -> dict:
        return {name: getattr(self, name).model_dump() for name in SECTIONS}


SECTIONS: dict[str, type[Section]] = typing.get_type_hints(Params)


def validated(model: type[S], raw: object, section: str) -> S:
    """`raw` as `model`, or a ParamsError naming `params.yaml:<section>.<key>` and the rule."""
    if not isinstance(raw, dict):
        raise ParamsError(f"params.yaml:{section}: expected a mapping, got {raw!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe(model, exc.errors()[0], section)) from None


def _describe(model: type[Section], error: Any, section: str) -> str:
    """One pydantic error as `params.yaml:<key>: <rule>, got <value>`."""
    parts = [section] if section else []
    owner: type[Section] = model
    current: type[Section] | None = model
    in_dict = False
    for item in error["loc"]:
        if isinstance(item, int) and parts:
            parts[-1] += f"[{item}]"
        elif current is not None and item in current.model_fields:
            owner = current
            parts.append(str(item))
            annotation = current.model_fields[item].annotation
            in_dict = typing.get_origin(annotation) is dict
            is_model = isinstance(annotation, type) and issubclass(annotation, Section)
            current = typing.cast("type[Section]", annotation) if is_model else None
        elif in_dict or error["type"] == "extra_forbidden":
            parts.append(str(item))
            in_dict = False
        else:
            break  # the name of a union's member: the key is already whole
    key = ".".join(parts)
    given = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        known = ", ".join(sorted((current or owner).model_fields))
        return f"params.yaml:{key}: unknown key (known: {known})"
    if kind in _BOUND_ERRORS:
        return f"params.yaml:{key}: {_bounds(owner, parts[-1])}, got {given!r}"
    if kind == "literal_error":
        return f"params.yaml:{key}: must be one of {error['ctx']['expected']}, got {given!r}"
    expected = _EXPECTED.get(kind.removesuffix("_parsing"), error["msg"].lower())
    if kind == "float_type" and isinstance(given, str):
        expected += " (write exponents with a dot, e.g. 2.0e-4)"
    return f"params.yaml:{key}: expected {expected}, got {given!r}"


_EXPECTED = {
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}
_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _bounds(model: type[Section], name: str) -> str:
    """A field's bounds in words: `must be at least 1`, `must be in (0, 1]`, ..."""
    low: tuple[str, Any] | None = None
    high: tuple[str, Any] | None = None
    for rule in model.model_fields[name].metadata:
        if isinstance(rule, annotated_types.Ge):
            low = ("[", rule.ge)
        elif isinstance(rule, annotated_types.Gt):
            low = ("(", rule.gt)
        elif isinstance(rule, annotated_types.Le):
            high = ("]", rule.le)
        elif isinstance(rule, annotated_types.Lt):
            high = (")", rule.lt)
    if low and high:
        if (low[0], high[0]) == ("[", "]"):
            return f"must be between {low[1]} and {high[1]}"
        if (low[0], high[0]) == ("(", ")"):
            return f"must be between {low[1]} and {high[1]}, exclusive"
        return f"must be in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"must be at least {low[1]}" if low[0] == "[" else f"must be above {low[1]}"
    assert high is not None
    return f"must be at most {high[1]}" if high[0] == "]" else f"must be below {high[1]}"


def _check(p: Params) -> None:
    """Rules that span keys or need more than a bound (each key's own are on its field)."""
    for section in ("min", "max", "beat_base", "beat_baseline", "no_regression"):
        for name in getattr(p.gate, section):
            if not _metric_path(name):
                raise ParamsError(
                    f"params.yaml:gate.{section}: {name!r}: expected `task.metric` or "
                    "`sources.<source>.metric`"
                )
    if p.train.epochs <= 0 and p.train.max_steps <= 0:
        raise ParamsError("params.yaml:train.epochs: must be above 0 (or set train.max_steps)")
    if p.dpo.loss_type not in DPO_LOSSES:
        raise ParamsError(
            f"params.yaml:dpo.loss_type: unknown loss {p.dpo.loss_type!r}"
            f" (TRL's: {', '.join(DPO_LOSSES)})"
        )
    try:
        re.compile(p.prepare.student_number_pattern)
    except re.error as exc:
        raise ParamsError(f"params.yaml:prepare.student_number_pattern: bad regex: {exc}") from None
    if not p.feedback.strata:
        raise ParamsError("params.yaml:feedback.strata: name at least one field")
    if p.drift.max_samples < p.drift.min_samples:
        raise ParamsError("params.yaml:drift.max_samples: must be at least drift.min_samples")
    if p.validate.max_record_tokens < p.validate.min_record_tokens:
        raise ParamsError(
            "params.yaml:validate.max_record_tokens: must be at least validate.min_record_tokens"
        )


def _metric_path(name: str) -> bool:
    parts = name.split(".")
    if parts[0] == "sources":
        return len(parts) >= 3 and all(parts)
    return len(parts) == 2 and all(parts)


def parse_params(raw: object) -> Params:
    """The core sections, typed and checked; a stage's own section is left to its module."""
    if not isinstance(raw, dict):
        raise ParamsError("params.yaml: expected a mapping of sections")
    own = stages_own_sections()
    unknown = sorted(set(raw) - set(SECTIONS) - own)
    if unknown:
        known = ", ".join(sorted(SECTIONS))
        raise ParamsError(f"params.yaml:{unknown[0]}: unknown key (known: {known})")
    sections = {name: validated(model, raw.get(name, {}), name) for name, model in SECTIONS.items()}
    params = Params(**typing.cast("dict[str, Any]", sections))
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
    return set(dvc_stages(dvc_yaml)) - set(SECTIONS)


def load_params(path: Path = PARAMS) -> Params:
    return parse_params(read_params_file(path))


def stage_params(section: str, schema: type[S], path: Path = PARAMS) -> S:
    """The section a stage owns, typed by a `Section` model in the stage's own module:

        class WordsParams(Section):
            min_chars: int = Field(50, ge=1, description="shortest notice counted")

        params = stage_params("words", WordsParams)

    The whole file is checked first, as load_params does."""
    raw = read_params_file(path)
    parse_params(raw)
    return validated(schema, raw.get(section, {}), section)
