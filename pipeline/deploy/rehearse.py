"""`llmops rehearse`: the Rollout's canary, rehearsed on this machine with a real Prometheus.

Run: llmops rehearse [--env production] [--canary-fault error_rate=0.1] [--time-scale 30]
        [--arg max-latency-ratio=1.5]

What runs, all on 127.0.0.1 and all stopped at the end (also on Ctrl-C and on errors):
- the stable model (the environment's release, fetched from its adapter URI and checked
  against its sha256) and the canary (the candidate: models/base + models/adapter of this
  checkout), each under `llmops serve`, with the canary's `--canary-fault`s;
- Debian's `prometheus`, scraping both with the labels the ServiceMonitor gives in the cluster
  (job vllm-metrics, namespace, rollouts_pod_template_hash, role);
- a load generator whose split follows the Rollout's `setWeight` steps.
The Rollout's steps and AnalysisTemplates are read from `kubectl kustomize` of the overlay and
walked in order: `setWeight` moves traffic, `pause` waits, `analysis` runs the step analysis
(`llmops analyze`'s engine, Argo's semantics) and the background analysis runs from its
`startingStep` to the end. Durations, intervals, the error retry and PromQL windows are
divided by `--time-scale` (30: a 5m pause takes 10 s). A failed or errored analysis aborts:
traffic goes back to stable, and if the canary is the environment's current release its
promotion is reverted (`llmops rollback`). An inconclusive one leaves the rollout paused
(Inconclusive), as Argo does; so does an analysis this machine cannot predict.
Promoted needs every analysis to have ended with a verdict and every server to be alive at
the end: a canary that died aborts; the rehearsal's own Prometheus or stable server dying
ends Error (what Argo would have done is in the report) and never touches git. Its servers
die with it, even on SIGKILL. Prints a timeline; writes a JSON report.
Exit: 0 Promoted, 1 Aborted, 2 Inconclusive, 3 Error.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.deploy.analysis import (
    CANNOT_PREDICT,
    InvalidSpec,
    Measurement,
    RunResult,
    find_template,
    metrics_of,
    parse_args_list,
    resolve_args,
    run_analysis,
    seconds,
    show,
)
from pipeline.io import UserError, read_jsonl, write_json
from pipeline.paths import EVAL_FILE
from pipeline.processes import Processes, free_port, wait_http

NAMESPACE = "rehearsal"
RESULT_CODES = {"Promoted": 0, "Aborted": 1, "Inconclusive": 2, "Error": 3}


@dataclass
class Side:
    role: str  # stable | canary
    base: Path
    adapter: Path | None
    version: str
    pod_hash: str
    faults: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# --- what is stable, what is the canary --------------------------------------------------


def archive_sha256(adapter_dir: Path) -> str:
    from pipeline.release.promote import adapter_archive

    return hashlib.sha256(adapter_archive(adapter_dir)).hexdigest()


def fetch_release(record: dict, dest: Path) -> Path | None:
    """The release's adapter, downloaded from its URI and checked against its sha256; None
    when the environment has no release yet (version 0)."""
    import fsspec

    model = record.get("model") or {}
    if not model.get("version"):
        return None
    adapter = model["adapter"]
    try:
        with fsspec.open(adapter["uri"], "rb") as fh:
            data = fh.read()
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot fetch the release adapter {adapter['uri']}: {exc}; configure access to the"
            " DVC remote, or pass --stable DIR"
        ) from None
    if hashlib.sha256(data).hexdigest() != adapter["sha256"]:
        raise UserError(f"{adapter['uri']}: sha256 differs from the release record")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
    return dest


def previous_record(env: str) -> dict:
    """The environment's record before its last promotion (what a revert restores)."""
    from pipeline.release.promote import promotion_commits
    from pipeline.release.record import read_record

    commits = promotion_commits(env)
    return read_record(env, f"{commits[0].sha}^") if commits else {}


def pod_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# --- Prometheus and traffic --------------------------------------------------------------


def prometheus_config(sides: list[Side], scrape_s: float) -> dict:
    """Scrape both servers as the ServiceMonitor does in the cluster: job vllm-metrics, with
    the pod labels rollouts_pod_template_hash and role copied onto every series."""
    every = f"{round(scrape_s * 1000)}ms"
    return {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "scrape_configs": [
            {
                "job_name": "vllm-metrics",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{s.port}"],
                        "labels": {
                            "namespace": NAMESPACE,
                            "rollouts_pod_template_hash": s.pod_hash,
                            "role": s.role,
                            "pod": f"vllm-{s.pod_hash}-0",
                        },
                    }
                    for s in sides
                ],
            }
        ],
    }


def served_names(objs: list[dict]) -> tuple[str, str]:
    """(served model name, adapter name) the overlay's pods serve under (its model.env)."""
    for o in objs:
        data = o.get("data") or {}
        if o.get("kind") == "ConfigMap" and {"SERVED_MODEL_NAME", "ADAPTER_NAME"} <= set(data):
            return data["SERVED_MODEL_NAME"], data["ADAPTER_NAME"]
    raise UserError("the overlay has no ConfigMap with SERVED_MODEL_NAME and ADAPTER_NAME")


class Traffic(threading.Thread):
    """Chat requests at a steady rate for `model` (the adapter's name, as production clients
    must ask for it: any other name is answered by the base weights); the share `weight`
    (percent) goes to the canary, spread evenly (a smooth weighted round robin, not random)."""

    def __init__(self, stable: Side, canary: Side, prompts: list[str], rate: float, model: str):
        super().__init__(name="traffic", daemon=True)
        self.sides, self.prompts, self.rate, self.model = (stable, canary), prompts, rate, model
        self.weight, self.halt = 0, threading.Event()
        self.sent = {"stable": 0, "canary": 0}
        self.status: dict[str, dict[str, int]] = {"stable": {}, "canary": {}}
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="request")
        self.lock = threading.Lock()

    def run(self) -> None:
        if self.rate <= 0:
            return
        credit, tick = 0, 1.0 / self.rate
        prompts = itertools.cycle(self.prompts)
        next_at = time.monotonic()
        while not self.halt.is_set():
            credit += self.weight
            side = self.sides[1] if credit >= 100 else self.sides[0]
            credit -= 100 if credit >= 100 else 0
            self.sent[side.role] += 1
            self.pool.submit(self.request, side, next(prompts))
            next_at += tick
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        self.pool.shutdown(wait=False, cancel_futures=True)  # in-flight ones end with the servers

    def request(self, side: Side, prompt: str) -> None:
        messages = [{"role": "user", "content": prompt}]
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": 8})
        req = urllib.request.Request(
            f"{side.url}/v1/chat/completions", body.encode(), {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                code = str(resp.status)
        except urllib.error.HTTPError as exc:
            code = str(exc.code)
        except OSError:
            code = "connection error"
        with self.lock:
            counts = self.status[side.role]
            counts[code] = counts.get(code, 0) + 1


def eval_prompts(limit: int = 200) -> list[str]:
    if not EVAL_FILE.exists():
        raise UserError(f"{EVAL_FILE} not found: run `dvc repro` (or `dvc pull`) first")
    rows = read_jsonl(EVAL_FILE)[:limit]
    return [r["prompt"][-1]["content"] for r in rows]


# --- the rollout -------------------------------------------------------------------------


@dataclass
class Rehearsal:
    env: str
    time_scale: float
    min_window_s: float
    overrides: dict[str, str] = field(default_factory=dict)  # --arg: template args, forced
    events: list[dict] = field(default_factory=list)
    analyses: list[dict] = field(default_factory=list)
    first_bad_s: float | None = None
    first_bad_interval_s: float | None = None
    start: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return round(time.monotonic() - self.start, 2)

    def event(self, what: str, **detail: Any) -> None:
        self.events.append({"t_s": self.now(), "event": what, **detail})
        extra = "  ".join(f"{k}={v}" for k, v in detail.items())
        print(f"[{self.now():7.1f}s] {what}  {extra}".rstrip(), flush=True)

    def measured(self, template: str, m: Measurement) -> None:
        if m.phase in ("Failed", "Error") and self.first_bad_s is None:
            self.first_bad_s, self.first_bad_interval_s = self.now(), m.interval_s
        print(f"[{self.now():7.1f}s] {template}{show(m)}", flush=True)

    def record(self, template: str, kind: str, result: RunResult) -> None:
        self.analyses.append(
            {
                "template": template,
                "kind": kind,
                "phase": result.phase,
                "message": result.message,
                "seconds": result.seconds,
                "measurements": [
                    {
                        "metric": m.metric,
                        "index": m.index,
                        "phase": m.phase,
                        "value": m.value,
                        "message": m.message,
                    }
                    for r in result.metrics
                    for m in r.measurements
                ],
            }
        )


def step_args(arg_specs: list[dict], stable: Side, canary: Side) -> dict[str, str]:
    """Argo's arg sources: a value, the stable or latest pod template hash, the namespace."""
    out = {}
    for a in arg_specs or []:
        source = a.get("valueFrom") or {}
        if "value" in a:
            out[a["name"]] = str(a["value"])
        elif "podTemplateHashValue" in source:
            side = stable if source["podTemplateHashValue"] == "Stable" else canary
            out[a["name"]] = side.pod_hash
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            out[a["name"]] = NAMESPACE
        else:
            raise UserError(f"analysis arg {a['name']!r}: its source cannot be rehearsed here")
    return out


def run_templates(
    objs,
    spec: dict,
    stable: Side,
    canary: Side,
    prom: str,
    r: Rehearsal,
    kind: str,
    stop: threading.Event,
) -> RunResult:
    """One AnalysisRun of every template the step names (Argo merges them into one run)."""
    metrics, names = [], []
    given = {**step_args(spec.get("args", []), stable, canary), **r.overrides}
    for ref in spec.get("templates", []):
        template = find_template(objs, ref["templateName"], f"overlay {r.env}")
        declared = {a["name"] for a in template["spec"].get("args", [])}
        values = resolve_args(template, {k: v for k, v in given.items() if k in declared})
        names.append(ref["templateName"])
        try:
            metrics += metrics_of(template, values, prom, r.time_scale, r.min_window_s)
        except InvalidSpec as exc:  # Argo: the run is Error before measuring
            result = RunResult("Error", [], 0.0, invalid=f"analysis spec invalid: {exc}")
            r.record("+".join(names), kind, result)
            return result
    label = "+".join(names)
    result = run_analysis(metrics, stop, on_measurement=lambda m: r.measured(label, m))
    r.record(label, kind, result)
    return result


def walk(
    objs,
    stable: Side,
    canary: Side,
    prom: str,
    traffic: Traffic,
    r: Rehearsal,
    abort: threading.Event,
) -> tuple[str, str]:
    """The Rollout's steps in order; (Promoted|Aborted|Inconclusive, why)."""
    rollout = next((o for o in objs if o.get("kind") == "Rollout"), None)
    if rollout is None:
        raise UserError(f"overlay {r.env}: no Rollout rendered")
    canary_spec = rollout["spec"]["strategy"]["canary"]
    background = canary_spec.get("analysis")
    verdict: dict[str, str] = {}
    done = threading.Event()
    worker = None

    def run_background() -> None:
        try:
            result = run_templates(objs, background, stable, canary, prom, r, "background", done)
        except Exception as exc:  # a crash must not pass for a verdict
            verdict["background_ended"] = "crashed"
            verdict.setdefault("background", CANNOT_PREDICT)
            verdict.setdefault("why", f"background analysis crashed: {exc!r}")
            abort.set()
            return
        verdict["background_ended"] = result.phase
        if result.phase in ("Failed", "Error", "Inconclusive", CANNOT_PREDICT) and (
            not done.is_set() or result.phase == CANNOT_PREDICT
        ):
            verdict.setdefault("background", result.phase)
            verdict.setdefault("why", f"background analysis {result.phase}: {result.message}")
            abort.set()

    try:
        for i, step in enumerate(canary_spec.get("steps", [])):
            if background and worker is None and i >= int(background.get("startingStep", 0)):
                worker = threading.Thread(target=run_background, daemon=True)
                worker.start()
                r.event("background analysis started", step=i)
            if abort.is_set():
                break
            kind, value = next(iter(step.items()))
            if kind == "setWeight":
                traffic.weight = int(value)
                r.event("setWeight", step=i, weight=value)
            elif kind == "pause":
                duration = (value or {}).get("duration")
                if duration is None:
                    r.event("pause without duration: a person promotes; continuing", step=i)
                    continue
                wait = (
                    seconds(
                        str(duration) if not str(duration).isdigit() else f"{duration}s",
                        f"steps[{i}].pause",
                    )
                    / r.time_scale
                )
                r.event("pause", step=i, duration=duration, seconds=round(wait, 1))
                abort.wait(wait)
            elif kind == "analysis":
                r.event("analysis", step=i)
                result = run_templates(objs, value, stable, canary, prom, r, f"step {i}", abort)
                r.event("analysis done", step=i, phase=result.phase)
                if abort.is_set():
                    break
                if result.phase in ("Failed", "Error"):
                    verdict.setdefault("why", f"step {i} analysis {result.phase}: {result.message}")
                    abort.set()
                elif result.phase in ("Inconclusive", CANNOT_PREDICT):
                    return "Inconclusive", f"step {i} analysis {result.phase}: {result.message}"
            else:
                r.event(f"{kind}: routing only, not rehearsed", step=i)
    finally:
        done.set()
        if worker is not None:
            worker.join()
    if abort.is_set():
        if verdict.get("background") in ("Inconclusive", CANNOT_PREDICT):
            return "Inconclusive", verdict["why"]
        return "Aborted", verdict.get("why", "aborted")
    if background and verdict.get("background_ended") is None:
        return "Inconclusive", "the background analysis never ended with a verdict"
    if traffic.weight != 100:
        traffic.weight = 100
        r.event("setWeight", weight=100)
    return "Promoted", "every step passed"


def servers_check(result: str, why: str, stable: Side, canary: Side, prom) -> tuple[str, str]:
    """The walk's verdict, unless a server this rehearsal started is gone: its own Prometheus
    or the stable server dying is the rehearsal's failure (Error); the canary dying is the
    candidate's (Aborted). Either way, never Promoted."""
    dead = {
        name: p.poll()
        for name, p in (("prometheus", prom), ("stable", stable.proc), ("canary", canary.proc))
        if p.poll() is not None
    }
    for name in ("prometheus", "stable"):
        if name in dead:
            return "Error", (
                f"the rehearsal's {name} exited (code {dead[name]}) before the end: nothing"
                f" can be concluded or reverted (its analyses would have ended {result}: {why})"
            )
    if "canary" in dead:
        return "Aborted", f"the canary server exited (code {dead['canary']}) during the rollout"
    return result, why


def rollback_if_promoted(env: str, canary_sha: str) -> dict:
    """Argo sends traffic back to stable by itself; git is reverted only where the canary is
    the environment's current release (what the rollback workflow does in the cluster)."""
    from pipeline.release.promote import rollback
    from pipeline.release.record import read_record

    current = (read_record(env).get("model") or {}).get("adapter", {}).get("sha256")
    if current != canary_sha:
        return {"git": f"the canary is not {env}'s release: nothing to revert"}
    return {"git": rollback(env)}


def checked_overrides(objs: list[dict], given: list[str] | None, env: str) -> dict[str, str]:
    """`--arg NAME=VALUE`s, each naming an argument some AnalysisTemplate declares."""
    overrides = parse_args_list(given)
    declared = {
        a["name"]
        for o in objs
        if o.get("kind") == "AnalysisTemplate"
        for a in o["spec"].get("args", [])
    }
    if set(overrides) - declared:
        unknown = ", ".join(sorted(set(overrides) - declared))
        raise UserError(f"--arg {unknown}: no AnalysisTemplate of {env} declares it")
    return overrides


def serve_command(side: Side, served_name: str, adapter_name: str, log: Path) -> list[str]:
    """`llmops serve` for one side, named as the Rollout's pods name their model."""
    cmd = [sys.executable, "-m", "pipeline.cli", "serve", "--model", str(side.base)]
    cmd += ["--adapter", str(side.adapter), "--port", str(side.port)]
    cmd += ["--served-model-name", served_name, "--adapter-name", adapter_name]
    cmd += ["--model-version", side.version, "--threads", "1", "--request-log", str(log)]
    for fault in side.faults:
        cmd += ["--fault", fault]
    return cmd


def start_prometheus(
    procs: Processes, work: Path, sides: list[Side], scrape_interval: float
) -> tuple[subprocess.Popen, str]:
    """Debian's prometheus scraping the sides as the ServiceMonitor would: (process, URL)."""
    port = free_port()
    prom_dir = work / "prometheus"
    prom_dir.mkdir()
    (prom_dir / "prometheus.yml").write_text(
        yaml.safe_dump(prometheus_config(sides, scrape_interval))
    )
    proc = procs.start(
        "prometheus",
        [
            "prometheus",
            f"--config.file={prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
    )
    return proc, f"http://127.0.0.1:{port}"


def rehearse(args: argparse.Namespace) -> dict:
    """The rehearsal, start to end; its report (`result` is the verdict)."""
    from pipeline.deploy.manifests import render
    from pipeline.release.record import read_record

    if shutil.which("prometheus") is None:
        raise UserError("prometheus not found: `make tools` installs Debian's prometheus")
    env, out = args.env, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    objs = render(Path("manifests/overlays") / env)
    canary_dir = Path(args.canary)
    if not canary_dir.is_dir():
        raise UserError(f"{canary_dir}: no candidate model; run `dvc repro` first")
    canary_sha = archive_sha256(canary_dir)
    record = read_record(env)
    promoted = (record.get("model") or {}).get("adapter", {}).get("sha256") == canary_sha
    stable_record = previous_record(env) if promoted else record
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=out))  # under out: findable, removed
    overrides = checked_overrides(objs, args.arg, env)
    served_name, adapter_name = served_names(objs)
    r = Rehearsal(env, args.time_scale, args.min_window, overrides)
    procs = Processes(out)
    stable_dir: Path | None
    try:
        if args.stable:
            stable_dir, stable_version = Path(args.stable), "stable"
        else:
            stable_dir = fetch_release(stable_record, work / "stable")
            stable_version = str((stable_record.get("model") or {}).get("version", 0))
        if stable_dir is None:
            r.event(f"{env} has no earlier release: the stable side serves the candidate too")
            stable_dir, stable_version = canary_dir, "candidate"
        base = Path(args.base_model)
        stable = Side("stable", base, stable_dir, stable_version, pod_hash(f"s{stable_version}"))
        canary = Side(
            "canary",
            base,
            canary_dir,
            "candidate",
            pod_hash(f"c{canary_sha}"),
            list(args.canary_fault or []),
        )
        for side in (stable, canary):
            cmd = serve_command(
                side, served_name, adapter_name, out / f"{side.role}.requests.jsonl"
            )
            side.proc = procs.start(side.role, cmd)
        prom, prom_url = start_prometheus(procs, work, [stable, canary], args.scrape_interval)
        for side in (stable, canary):
            wait_http(f"{side.url}/health", side.proc, side.role, procs, timeout=180)
        wait_http(f"{prom_url}/-/ready", prom, "prometheus", procs, timeout=60)
        r.event(
            "started",
            stable=stable.url,
            canary=canary.url,
            prometheus=prom_url,
            faults=",".join(canary.faults) or "none",
        )
        traffic = Traffic(stable, canary, eval_prompts(), args.rate, adapter_name)
        traffic.start()
        abort = threading.Event()
        try:
            result, why = walk(objs, stable, canary, prom_url, traffic, r, abort)
            aborted_at = r.now()
            argo_would = result
            result, why = servers_check(result, why, stable, canary, prom)
            if result == "Aborted":
                traffic.weight = 0
                r.event("abort: all traffic back to stable", why=why)
        finally:
            traffic.halt.set()
            traffic.join(timeout=10)
        # only a verdict on the canary reverts git; the rehearsal's own failure never does
        rollback = rollback_if_promoted(env, canary_sha) if result == "Aborted" else None
        r.event(result, why=why)
        report = {
            "result": result,
            "why": why,
            "argo_would": argo_would,
            "environment": env,
            "time_scale": args.time_scale,
            "stable": {"version": stable.version, "pod_hash": stable.pod_hash, "url": stable.url},
            "prometheus": prom_url,
            "canary": {
                "version": "candidate",
                "url": canary.url,
                "pod_hash": canary.pod_hash,
                "sha256": canary_sha,
                "faults": canary.faults,
            },
            "traffic": {"rate_per_s": args.rate, "sent": traffic.sent, "status": traffic.status},
            "timeline": r.events,
            "analyses": r.analyses,
            "first_bad_measurement_s": r.first_bad_s,
            "first_bad_interval_s": r.first_bad_interval_s,
            "canary_abort_s": round(aborted_at - r.first_bad_s, 2)
            if result == "Aborted" and r.first_bad_s is not None
            else None,
            "rollback": rollback,
        }
        write_json(out / "report.json", report)
        return report
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


@command(
    "rehearse",
    help="rehearse the Rollout's canary here: two servers, Prometheus, traffic, analysis",
    args=[
        arg("--env", default="production", help="overlay whose Rollout to follow"),
        arg(
            "--canary-fault",
            action="append",
            metavar="NAME=VALUE",
            help="error_rate=0.1, http_error_rate=0.1, latency_ms=800 or"
            " ttft_factor=3 (repeatable)",
        ),
        arg(
            "--time-scale",
            type=float,
            default=30.0,
            help="divide pauses, intervals and windows (default 30)",
        ),
        arg("--rate", type=float, default=24.0, help="requests per second"),
        arg(
            "--arg",
            action="append",
            metavar="NAME=VALUE",
            help="set an analysis argument, e.g. max-latency-ratio=1.5 (repeatable)",
        ),
        arg(
            "--min-window",
            type=float,
            default=10.0,
            help="shortest PromQL range window once scaled, seconds",
        ),
        arg("--scrape-interval", type=float, default=1.0, help="seconds"),
        arg("--base-model", default=str(paths.BASE_DIR), help="the base model directory"),
        arg("--canary", default=str(paths.ADAPTER_DIR), help="the candidate"),
        arg("--stable", help="stable model dir (default: the environment's release)"),
        arg("--out", default=str(paths.REPORTS_DIR / "rehearsal")),
    ],
)
def main(args: argparse.Namespace) -> int:
    def interrupted(signum, frame):  # SIGTERM stops everything as Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        report = rehearse(args)
        result = report["result"]
    except KeyboardInterrupt:
        print("rehearsal interrupted: everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    sent = report["traffic"]["sent"]
    print(
        f"rehearsal of {args.env}: {result} ({report['why']}); "
        f"{sent['stable']} requests to stable, {sent['canary']} to the canary; "
        f"report: {Path(args.out) / 'report.json'}"
    )
    return RESULT_CODES[result]
