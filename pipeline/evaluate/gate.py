"""Decide whether the fine-tuned model may ship: metrics/eval.json -> metrics/gate.json.

Run: dvc repro gate   (or: llmops gate)

Checks, all from params.gate: absolute bounds on any metric; beating the untuned base;
beating the cheap baseline (metrics/eval.json:baseline) significantly and no significant
regression against the champion (champion/predictions.jsonl), both judged by a paired
bootstrap interval on the same examples; and passed data validation. Fails closed: a metric
that is missing or unreadable is a failed check that names it. Exits 1 on failure, so
`dvc repro` and CI fail too; metrics/gate.json is written either way and lists every check
with its value, bound, operator, interval and verdict, and the DVC hash of the adapter it
judged (`llmops register` refuses any other).
"""

from __future__ import annotations

import math
import sys
from typing import Any

from pipeline.config import GateParams, load_params
from pipeline.io import DataError, read_json_object, read_jsonl, run_stage, write_json
from pipeline.paths import (
    ADAPTER_DIR,
    CHAMPION_PREDICTIONS,
    EVAL_METRICS,
    GATE_METRICS,
    PREDICTIONS,
    VALIDATE_METRICS,
)
from pipeline.tracking import dvc_md5

OPS = {
    ">=": lambda v, b: v >= b,
    "<=": lambda v, b: v <= b,
    ">": lambda v, b: v > b,
    "==": lambda v, b: v == b,
}


def lookup(metrics: Any, path: str) -> float:
    """metrics['a']['b'] for 'a.b' (`sources.<source>.metric` for an added dataset, whose name
    may hold dots), as a finite number; KeyError/ValueError say what is wrong."""
    from pipeline.evaluate.scoring import SOURCES, split_metric

    node = metrics
    head, name = split_metric(path)
    parts = (
        [SOURCES, head[len(SOURCES) + 1 :], name]
        if path.startswith(f"{SOURCES}.")
        else path.split(".")
    )
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"missing metric {path!r}")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise ValueError(f"metric {path!r} is not a finite number: {node!r}")
    return float(node)


def check(name: str, op: str, value_of, bound_of) -> dict:
    """One check; any error while reading value or bound makes it a failed check."""
    try:
        value, bound = value_of(), bound_of()
    except (KeyError, ValueError) as exc:
        return {
            "name": name,
            "op": op,
            "value": None,
            "bound": None,
            "passed": False,
            "error": str(exc.args[0]),
        }
    return {
        "name": name,
        "op": op,
        "value": value,
        "bound": bound,
        "passed": bool(OPS[op](value, bound)),
    }


def pending(name: str, op: str, bound: float) -> dict:
    """A paired-comparison check before its value is known: failed until judged."""
    return {"name": name, "op": op, "bound": bound, "value": None, "passed": False}


def interval_fields(d, other: str) -> dict:
    """A paired bootstrap's delta, size and interval, and the other side's score as `other`."""
    return {
        "delta": round(d.delta, 4),
        "n": d.n,
        "interval": [round(d.low, 4), round(d.high, 4)],
        other: round(d.baseline, 4),
    }


def regression_check(
    p: GateParams,
    metric: str,
    candidate: list[dict] | None,
    champion: list[dict] | None,
    problem: str | None,
) -> dict:
    """`metric` must not be significantly worse than the champion's on the same examples."""
    from pipeline.evaluate.compare import bootstrap_delta

    check = pending(f"{metric} vs champion", ">=", -p.tolerance)
    if error := unknown_metric(metric):
        return check | {"error": error}
    if problem:
        return check | {"error": problem}
    if champion is None:
        return check | {
            "passed": True,
            "note": f"no champion yet ({CHAMPION_PREDICTIONS} is absent): nothing to regress from",
        }
    d = bootstrap_delta(metric, candidate or [], champion, p.bootstrap_samples, p.confidence)
    if d is None:
        return check | {"error": f"no eval example in common with the champion for {metric}"}
    # a regression is confirmed only when even the interval's upper end is below -tolerance
    return (
        check
        | interval_fields(d, "champion")
        | {
            "value": round(d.high, 4),
            "passed": d.high >= -p.tolerance,
        }
    )


def unknown_metric(metric: str) -> str | None:
    from pipeline.evaluate.scoring import METRICS, split_metric

    name = split_metric(metric)[1]
    if name not in METRICS:
        return f"{metric!r}: {name!r} is no metric (one of: {', '.join(METRICS)})"
    return None


def baseline_check(
    p: GateParams, metric: str, predictions: list[dict] | None, problem: str | None
) -> dict:
    """`metric` must beat the cheap baseline on the same examples: the paired-bootstrap
    interval of (fine-tuned - baseline) lies entirely above zero."""
    from pipeline.evaluate.compare import versus_baseline

    check = pending(f"{metric} beats baseline", ">", 0.0)
    if error := unknown_metric(metric):
        return check | {"error": error}
    if problem:
        return check | {"error": problem}
    d = versus_baseline(metric, predictions or [], p.bootstrap_samples, p.confidence)
    if d is None:
        return check | {
            "error": f"no example of {metric.rpartition('.')[0]!r} has a baseline answer in "
            f"{PREDICTIONS}: rerun `dvc repro evaluate`"
        }
    return (
        check
        | interval_fields(d, "baseline")
        | {
            "value": round(d.low, 4),
            "passed": d.improved,
        }
    )


def decide(
    p: GateParams,
    metrics: dict | None,
    validation: dict | None,
    unreadable: dict[str, str] | None = None,
    predictions: list[dict] | None = None,
    champion: list[dict] | None = None,
) -> dict:
    """The gate's verdict. `metrics` is eval.json, `validation` is validate.json,
    `predictions` the candidate's per-example rows and `champion` the champion's (None when
    there is no champion yet). What could not be read is None and `unreadable` says why,
    which fails every check that needs it."""
    unreadable = unreadable or {}

    def metric(path: str):
        def read() -> float:
            if metrics is None:
                raise KeyError(f"{EVAL_METRICS} unreadable: {unreadable.get('eval', 'missing')}")
            return lookup(metrics, path)

        return read

    checks = [check(name, ">=", metric(name), lambda b=bound: b) for name, bound in p.min.items()]
    checks += [check(name, "<=", metric(name), lambda b=bound: b) for name, bound in p.max.items()]
    checks += [
        check(f"{name} beats base", ">", metric(name), metric(f"base.{name}"))
        for name in p.beat_base
    ]
    comparison_problem = unreadable.get("champion") or (
        f"{PREDICTIONS} unreadable: {unreadable['predictions']}"
        if "predictions" in unreadable
        else None
    )
    checks += [
        regression_check(p, metric, predictions, champion, comparison_problem)
        for metric in p.no_regression
    ]
    predictions_problem = (
        f"{PREDICTIONS} unreadable: {unreadable['predictions']}"
        if "predictions" in unreadable
        else None
    )
    checks += [
        baseline_check(p, metric, predictions, predictions_problem) for metric in p.beat_baseline
    ]
    if p.require_validation:

        def validated() -> float:
            if validation is None:
                raise KeyError(
                    f"{VALIDATE_METRICS} unreadable: {unreadable.get('validate', 'missing')}"
                )
            return 1.0 if validation.get("passed") is True else 0.0

        checks.append(check("data validation passed", "==", validated, lambda: 1.0))
    if not checks:
        checks.append(
            {
                "name": "at least one check configured",
                "op": "==",
                "value": 0.0,
                "bound": 1.0,
                "passed": False,
                "error": "params.yaml:gate has no checks; a gate that checks nothing fails",
            }
        )
    return {"passed": all(c["passed"] for c in checks), "checks": checks}


def _read_rows(path) -> tuple[list[dict] | None, str | None]:
    try:
        return read_jsonl(path), None
    except FileNotFoundError:
        return None, "file not found"
    except DataError as exc:
        return None, str(exc)


def main() -> int:
    params = load_params()
    metrics, eval_err = read_json_object(EVAL_METRICS)
    validation, validate_err = read_json_object(VALIDATE_METRICS)
    predictions, predictions_err = _read_rows(PREDICTIONS)
    champion, champion_err = (None, None)
    if CHAMPION_PREDICTIONS.exists():
        champion, champion_err = _read_rows(CHAMPION_PREDICTIONS)
    unreadable = {
        k: v
        for k, v in (
            ("eval", eval_err),
            ("validate", validate_err),
            ("predictions", predictions_err),
            ("champion", champion_err and f"{CHAMPION_PREDICTIONS} unreadable: {champion_err}"),
        )
        if v
    }
    verdict = decide(params.gate, metrics, validation, unreadable, predictions, champion)
    # what was judged: `llmops register` releases only the adapter dvc.lock names, if it is this
    verdict["adapter"] = {"path": ADAPTER_DIR.as_posix(), "md5": dvc_md5(ADAPTER_DIR)}
    write_json(GATE_METRICS, verdict)
    failed = [c for c in verdict["checks"] if not c["passed"]]
    for c in failed:
        reason = c.get("error") or f"{c['value']:.4g} is not {c['op']} {c['bound']:.4g}"
        print(f"gate: FAILED {c['name']}: {reason}", file=sys.stderr)
    if failed:
        print(
            f"gate: FAILED {len(failed)} of {len(verdict['checks'])} checks (see {GATE_METRICS});"
            " improve the model or data, or change params.yaml:gate with a reviewed reason",
            file=sys.stderr,
        )
        return 1
    print(f"gate: passed all {len(verdict['checks'])} checks")
    return 0


if __name__ == "__main__":
    run_stage(main)
