"""`llmops report --base REF`: the pull-request comment, as Markdown plus PNG plots.

Run: llmops report --base origin/main --out reports/pr && cml comment update reports/pr/report.md
(no --publish: the comment carries its plots itself)

Sections, most important first: the gate verdict (failed checks first); each task and added
dataset against the untuned base and a cheap baseline, saying plainly whether fine-tuning
beats the baseline; the metric diff (`dvc metrics diff --md`); the params diff
(`dvc params diff --md`); per-slice deltas with paired-bootstrap intervals, regressions first;
the examples whose verdict changed (right -> wrong first); the plots inline (the loss curve as
a Mermaid chart, which GitHub draws; each classification group's per-class table and confusion
matrix as tables), so nothing is uploaded to an asset host. PNG versions are written beside
report.md for local viewing. Works when REF has no metrics yet (first run) and
when the gate failed.
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
from pathlib import Path

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.config import load_params
from pipeline.evaluate.compare import slice_deltas, standings
from pipeline.evaluate.evaluate import SLICE_DIMENSIONS
from pipeline.evaluate.scoring import confusion_pairs, group_entry, groups, kinds_of
from pipeline.io import UserError, atomic_write_text, read_json_object, read_jsonl
from pipeline.paths import EVAL_METRICS, GATE_METRICS, LOSS_CURVE, PREDICTIONS

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Source Han Sans SC",
)
MAX_EXAMPLES = 20


def git_show(ref: str, path: Path) -> str | None:
    """The file at `ref`, or None if it did not exist there."""
    proc = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True
    )
    return proc.stdout if proc.returncode == 0 else None


def require_ref(ref: str) -> None:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise UserError(
            f"--base {ref}: not a commit here (fetch it first, e.g. `git fetch origin main`)"
        )


def dvc_md(*args: str) -> str:
    proc = subprocess.run(["dvc", *args, "--md"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"_`dvc {' '.join(args)}` failed: {proc.stderr.strip()[-300:]}_\n"
    return proc.stdout.strip() + "\n" if proc.stdout.strip() else "_no changes_\n"


def rows_at(ref: str) -> list[dict] | None:
    text = git_show(ref, PREDICTIONS)
    if text is None:
        return None
    import json

    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gate_section(gate: dict | None) -> str:
    if gate is None:
        return "## ❔ Gate: no verdict\n\n`metrics/gate.json` is missing: run `dvc repro`.\n"
    head = "## ✅ Gate passed" if gate.get("passed") else "## ❌ Gate failed"
    lines = [
        head,
        "",
        "| check | value | op | bound | interval | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in sorted(gate.get("checks", []), key=lambda c: c.get("passed", False)):
        interval = c.get("interval")
        shown = f"[{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else ""
        value = "—" if c.get("value") is None else f"{c['value']:.4g}"
        bound = "—" if c.get("bound") is None else f"{c['bound']:.4g}"
        verdict = "✅" if c.get("passed") else "❌"
        note = c.get("error") or c.get("note") or ""
        lines.append(
            f"| {c['name']} | {value} | {c['op']} | {bound} | {shown} | {verdict} {note} |"
        )
    return "\n".join(lines) + "\n"


def slice_section(deltas: list[dict], base: str) -> str:
    if not deltas:
        return f"## Slices\n\n_No predictions at `{base}` to compare with (first run)._\n"
    order = sorted(
        deltas, key=lambda d: (not d["high"] < 0, not d["low"] > 0, d["task"], d["slice"])
    )
    lines = [
        f"## Slices vs `{base}` (paired bootstrap 95% interval of the delta)",
        "",
        "| task | slice | n | before | after | delta | interval | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in order:
        regressed, improved = d["high"] < 0, d["low"] > 0
        mark = "🔻 **regression**" if regressed else ("▲ improvement" if improved else "")
        delta = f"**{d['delta']:+.3f}**" if regressed else f"{d['delta']:+.3f}"
        lines.append(
            f"| {d['task']} | {d['slice']} | {d['n']} | {d['baseline']:.3f} | "
            f"{d['candidate']:.3f} | {delta} | [{d['low']:+.3f}, {d['high']:+.3f}] | "
            f"{mark} |"
        )
    return "\n".join(lines) + "\n"


def changed_examples(new: list[dict], old: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """(right -> wrong, wrong -> right) pairs of (old row, new row), by example id."""
    before = {r["id"]: r for r in old}
    worse: list[tuple[dict, dict]] = []
    better: list[tuple[dict, dict]] = []
    for r in new:
        o = before.get(r["id"])
        if o is None or o["correct"] == r["correct"]:
            continue
        (worse if o["correct"] else better).append((o, r))
    return worse, better


def examples_section(new: list[dict], old: list[dict] | None) -> str:
    if old is None:
        return "## Changed examples\n\n_No predictions at the base ref (first run)._\n"
    worse, better = changed_examples(new, old)
    lines = [f"## Changed examples: {len(worse)} right → wrong, {len(better)} wrong → right", ""]
    for title, pairs in (("Right → wrong", worse), ("Wrong → right", better)):
        if not pairs:
            continue
        lines += [
            f"### {title}",
            "",
            "| id | task | reference | before | after |",
            "|---|---|---|---|---|",
        ]
        for o, r in pairs[:MAX_EXAMPLES]:
            cells = [r["id"], r["task"], r["reference"], o["prediction"], r["prediction"]]
            lines.append(
                "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
            )
        if len(pairs) > MAX_EXAMPLES:
            lines.append(
                f"\n_… and {len(pairs) - MAX_EXAMPLES} more in metrics/predictions.jsonl._"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def _pyplot():
    import logging

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in CJK_FONTS if f in installed]
    plt.rcParams["font.sans-serif"] = [*cjk, "DejaVu Sans"]
    return plt, bool(cjk)


def _loss(text: str | None) -> tuple[list[float], list[float]]:
    if not text:
        return [], []
    rows = list(csv.DictReader(io.StringIO(text)))
    return [float(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def plots(
    out: Path, base: str, deltas: list[dict], rows: list[dict], label_groups: list[str]
) -> tuple[list[str], bool]:
    """Write the PNGs; returns their file names and whether a CJK font was found."""
    import warnings

    plt, has_cjk = _pyplot()
    names = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-glyph warnings when no CJK font exists
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, text in (
            (base, git_show(base, LOSS_CURVE)),
            ("this change", LOSS_CURVE.read_text() if LOSS_CURVE.exists() else None),
        ):
            steps, losses = _loss(text)
            if steps:
                ax.plot(steps, losses, label=label)
        ax.set(xlabel="step", ylabel="training loss", title="Training loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "loss.png", dpi=110)
        names.append("loss.png")
        plt.close(fig)

        for group in label_groups:
            labels, grid = confusion(rows, group)
            fig, ax = plt.subplots(figsize=(5.5, 4.5))
            ax.imshow(grid, cmap="Blues")
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
            ax.set_yticks(range(len(labels)), labels)
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set(xlabel="predicted", ylabel="actual", title=f"{group}: confusion matrix")
            fig.tight_layout()
            name = f"confusion-{group}.png"
            fig.savefig(out / name, dpi=110)
            names.append(name)
            plt.close(fig)

        if deltas:
            shown = [d for d in deltas if d["slice"].startswith("category=")]
            fig, ax = plt.subplots(figsize=(7, 0.35 * len(shown) + 1.2))
            ys = range(len(shown))
            ax.barh(
                ys,
                [d["delta"] for d in shown],
                xerr=[
                    [d["delta"] - d["low"] for d in shown],
                    [d["high"] - d["delta"] for d in shown],
                ],
                color=[
                    "#d62728" if d["high"] < 0 else "#2ca02c" if d["low"] > 0 else "#999"
                    for d in shown
                ],
            )
            ax.set_yticks(list(ys), [f"{d['task']} {d['slice']}" for d in shown])
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set(xlabel=f"delta vs {base} (95% interval)", title="Per-slice change")
            fig.tight_layout()
            fig.savefig(out / "slices.png", dpi=110)
            names.append("slices.png")
            plt.close(fig)
    return names, has_cjk


MAX_CHART_POINTS = 30


def evenly_spaced(count: int, most: int) -> list[int]:
    """Up to `most` indices into `count` points, first and last included."""
    n = min(count, most)
    if n <= 1:
        return list(range(n))
    return sorted({round(i * (count - 1) / (n - 1)) for i in range(n)})


def mermaid_loss(base: str) -> str:
    """The training loss as a Mermaid chart, which GitHub draws inside the comment: plots
    reach the pull request without being uploaded anywhere."""
    curves = [
        (label, *_loss(text))
        for label, text in (
            (f"`{base}`", git_show(base, LOSS_CURVE)),
            ("this change", LOSS_CURVE.read_text() if LOSS_CURVE.exists() else None),
        )
    ]
    curves = [c for c in curves if c[1]]
    if not curves:
        return "_No training loss recorded._\n"
    charts = []
    same_steps = len(curves) == 2 and curves[0][1] == curves[1][1]
    groups = [curves] if same_steps else [[c] for c in curves]
    for group in groups:
        steps = group[0][1]
        keep = evenly_spaced(len(steps), MAX_CHART_POINTS)
        labels = " and ".join(label for label, *_ in group)
        lines = [
            "```mermaid",
            "xychart-beta",
            f'    title "Training loss: {labels.replace("`", "")}"',
            f'    x-axis "step" [{", ".join(str(int(steps[i])) for i in keep)}]',
            '    y-axis "loss"',
            *(
                f"    line [{', '.join(f'{losses[i]:.3f}' for i in keep)}]"
                for _, _, losses in group
            ),
            "```",
        ]
        if len(group) == 2:
            lines.append(f"_Lines: {group[0][0]} first, {group[1][0]} second._")
        charts.append("\n".join(lines))
    return "\n\n".join(charts) + "\n"


def confusion(rows: list[dict], group: str) -> tuple[list[str], list[list[int]]]:
    """(labels, counts[actual][predicted]) of one classification group's predictions."""
    pairs = confusion_pairs(rows, group)
    labels = sorted({a for a, _ in pairs} | {p for _, p in pairs})
    grid = [[sum(1 for p in pairs if p == (a, b)) for b in labels] for a in labels]
    return labels, grid


def confusion_table(rows: list[dict], group: str) -> str:
    """A confusion matrix as a Markdown table (rows: actual, columns: predicted)."""
    labels, grid = confusion(rows, group)
    lines = [
        "| actual \\ predicted | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for a, row in zip(labels, grid, strict=True):
        cells = [
            f"**{v}**" if a == b else (str(v) if v else "·")
            for b, v in zip(labels, row, strict=True)
        ]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return f"### {group}: confusion matrix\n\n" + "\n".join(lines) + "\n"


def class_section(metrics: dict, group: str) -> str:
    """A classification group's precision, recall and F1 per class."""
    table = (group_entry(metrics, group) or {}).get("classes") or {}
    lines = [
        f"### {group}: per class (fine-tuned)",
        "",
        "| class | n | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {c['n']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} |"
        for label, c in table.items()
    ]
    return "\n".join(lines) + "\n"


VERDICT_WORDS = {
    "beats": "✅ fine-tuning **beats** the baseline",
    "ties": "⚖️ fine-tuning does **no better** than the baseline",
    "loses": "⚠️ the baseline **beats** fine-tuning",
}


def baseline_section(metrics: dict | None, rows: list[dict]) -> str:
    """Every task and added source: untuned base, fine-tuned and the cheap baseline, with the
    paired interval of (fine-tuned - baseline) on the primary metric, in plain words."""
    if not metrics:
        return "## Against the baseline\n\n_`metrics/eval.json` is missing: run `dvc repro`._\n"
    g = load_params().gate
    found = standings(metrics, rows, g.bootstrap_samples, g.confidence)
    lines = [
        f"## Against the baseline (paired bootstrap {g.confidence:.0%} interval)",
        "",
        "| task / source | metric | base | fine-tuned | baseline | fine-tuned − baseline | |",
        "|---|---|---|---|---|---|---|",
    ]
    plain = []
    for s in found:
        if not s.primary:
            continue
        shown = (
            f"{s.versus.delta:+.3f} [{s.versus.low:+.3f}, {s.versus.high:+.3f}]"
            if s.versus
            else "—"
        )
        words = VERDICT_WORDS.get(s.verdict or "", "no baseline answers")
        cells = [s.group, s.metric, _num(s.base), _num(s.finetuned), _num(s.baseline), shown]
        lines.append("| " + " | ".join(cells) + f" | {words} |")
        if s.verdict:
            plain.append(f"- **{s.group}** ({s.metric}): {words} ({s.method}).")
    return "\n".join([*lines, "", *plain]) + "\n"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def build_report(base: str, out: Path) -> str:
    """Write out/report.md and its plots; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    gate, _ = read_json_object(GATE_METRICS)
    metrics, _ = read_json_object(EVAL_METRICS)
    new = read_jsonl(PREDICTIONS) if PREDICTIONS.exists() else []
    old = rows_at(base)
    kinds = kinds_of(metrics or {})
    label_groups = [g for g in groups(metrics or {}) if kinds[g] == "label"]
    deltas = slice_deltas(new, old, list(SLICE_DIMENSIONS), kinds=kinds) if old else []
    names, has_cjk = plots(out, base, deltas, new, label_groups)
    parts = [
        gate_section(gate),
        baseline_section(metrics, new),
        f"## Metrics vs `{base}`\n\n" + dvc_md("metrics", "diff", base),
        f"## Params vs `{base}`\n\n" + dvc_md("params", "diff", base),
        slice_section(deltas, base),
        examples_section(new, old),
        "## Plots\n\n"
        + mermaid_loss(base)
        + "".join(
            "\n" + class_section(metrics or {}, g) + "\n" + confusion_table(new, g)
            for g in label_groups
        ),
        f"_PNG versions ({', '.join(names)}) are in `{out}` where the report was built; none"
        " is uploaded"
        + ("" if has_cjk else " (their Chinese labels need a CJK font, e.g. fonts-noto-cjk)")
        + "._\n",
    ]
    markdown = "\n".join(parts)
    atomic_write_text(out / "report.md", markdown)
    return markdown


@command(
    "report",
    help="write the pull-request report (Markdown + PNG plots) comparing with a git ref",
    args=[
        arg("--base", default="main", help="the pull request's base: git ref to compare with"),
        arg(
            "--out", default=str(paths.REPORTS_DIR / "pr"), help="directory for report.md and plots"
        ),
    ],
)
def main(args: argparse.Namespace) -> int:
    require_ref(args.base)
    out = Path(args.out)
    markdown = build_report(args.base, out)
    regressions = markdown.count("🔻")
    print(
        f"report: {out / 'report.md'} ({regressions} slice regression(s) vs {args.base}); "
        f"publish with `cml comment update {out / 'report.md'}`"
    )
    return 0
