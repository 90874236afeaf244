"""The Kubernetes manifests, rendered with the real `kubectl kustomize` and checked with the
real validators: CRD schemas, kubernetes-validate, promtool."""

import copy
import hashlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

from pipeline.deploy.manifests import (
    alert_rules,
    analysis_queries,
    check,
    crd_dirs,
    crd_schemas,
    policy_errors,
    promql_errors,
    promtool,
    render,
    schema_errors,
    targets,
)
from pipeline.io import UserError
from pipeline.release.record import release_files

from ..conftest import ROOT

OVERLAYS = ["staging", "production"]
APPSET = "argocd/applicationset.yaml"


@pytest.fixture(scope="module")
def schemas():
    try:
        dirs = crd_dirs()
    except UserError as exc:  # no shared CRD folder and no network to fetch the pinned ones
        pytest.skip(f"CRD schemas unavailable: {exc}")
    found = crd_schemas(dirs)
    assert ("argoproj.io/v1alpha1", "Rollout") in found
    return found


@pytest.fixture(scope="module")
def rendered():
    return {env: render(ROOT / "manifests/overlays" / env) for env in OVERLAYS}


def by_kind(objs, kind, prefix=""):
    found = [o for o in objs if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert found, (kind, prefix)
    return found[0]


@pytest.mark.parametrize("target", targets(ROOT), ids=lambda p: p.name)
def test_every_kustomization_builds_and_validates_with_zero_errors(target, schemas):
    report = check(target, schemas)
    assert report.errors == []
    # only kinds whose CRDs are nowhere to be had go unchecked
    assert {k.split()[1] for k in report.unchecked_kinds} <= {
        "VirtualService",
        "DestinationRule",
        "PyTorchJob",
        "AppProject",
    }
    assert report.schema_checked >= report.objects - 2


def test_the_validators_fail_on_what_they_exist_to_catch(rendered, schemas):
    objs = rendered["production"]
    rollout = copy.deepcopy(by_kind(objs, "Rollout"))
    rollout["spec"]["strategy"]["canary"]["stepz"] = []
    assert "'stepz' was unexpected" in schema_errors(rollout, schemas)[0]
    service = copy.deepcopy(by_kind(objs, "Service", "vllm"))
    service["spec"]["portz"] = []
    assert "'portz' was unexpected" in schema_errors(service, schemas)[0]
    template = copy.deepcopy(by_kind(objs, "AnalysisTemplate"))
    template["spec"]["metrics"][0]["provider"]["prometheus"]["query"] = "sum(rate(x[5m])"
    assert "unclosed left parenthesis" in promql_errors([template])[0]
    assert "vllm-canary-background/success-rate" in promql_errors([template])[0]


def test_policy_refuses_unpinned_images_missing_probes_and_root(rendered):
    rollout = copy.deepcopy(by_kind(rendered["production"], "Rollout"))
    assert policy_errors(rollout) == []
    pod = rollout["spec"]["template"]["spec"]
    pod["containers"][0]["image"] = "vllm/vllm-openai:latest"
    pod["initContainers"][0]["image"] = "amazon/aws-cli"
    del pod["containers"][0]["readinessProbe"]
    del pod["securityContext"]["runAsNonRoot"]
    pod["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": True}
    errors = "\n".join(policy_errors(rollout))
    for expected in (
        "container vllm: image 'vllm/vllm-openai:latest' is not pinned",
        "initContainer fetch-adapter: image 'amazon/aws-cli' is not pinned",
        "container vllm: no readinessProbe",
        "container vllm: allowPrivilegeEscalation must be false",
        "container vllm: must run as non-root",
        "container vllm: a serving container needs readOnlyRootFilesystem",
        "container vllm: capabilities must drop ALL",
    ):
        assert expected in errors


def test_rollout_serves_the_adapter_of_the_release_and_canaries_in_steps(rendered):
    for env, objs in rendered.items():
        rollout = by_kind(objs, "Rollout")
        model = by_kind(objs, "ConfigMap", "vllm-model-")
        container = rollout["spec"]["template"]["spec"]["containers"][0]
        assert "--enable-lora" in container["args"]
        assert "--lora-modules=$(ADAPTER_NAME)=/adapters/$(ADAPTER_NAME)" in container["args"]
        assert "--max-lora-rank=$(MAX_LORA_RANK)" in container["args"]
        refs = {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e}
        assert refs == {model["metadata"]["name"]}, env  # the hashed name, rewritten
        assert {"ADAPTER_URI", "ADAPTER_SHA256", "MAX_LORA_RANK"} <= set(model["data"])
        canary = rollout["spec"]["strategy"]["canary"]
        weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
        assert weights == [10, 25, 50, 100]
        kinds = [next(iter(s)) for s in canary["steps"]]
        for i, kind in enumerate(kinds[:-1]):  # every new weight is paused on and analysed
            if kind == "setWeight" and canary["steps"][i]["setWeight"] < 100:
                assert kinds[i + 1 : i + 3] == ["pause", "analysis"], kinds
        assert canary["analysis"]["templates"][0]["templateName"] == "vllm-canary-background"
        header = canary["steps"][0]["setHeaderRoute"]
        assert header["match"][0] == {
            "headerName": "x-model-version",
            "headerValue": {"exact": "canary"},
        }
        assert {"name": header["name"]} in canary["trafficRouting"]["managedRoutes"]


def test_analysis_tells_canary_from_stable_by_pod_and_pauses_without_traffic(rendered):
    for template in (o for o in rendered["production"] if o["kind"] == "AnalysisTemplate"):
        for metric in template["spec"]["metrics"]:
            assert metric["successCondition"].startswith("len(result) > 0 && !isNaN(result[0])")
            assert metric["failureCondition"].startswith("len(result) > 0 && !isNaN(result[0])")
            assert metric["inconclusiveLimit"] >= 1
            # Argo counts a metric Successful once `count` is reached with inconclusive
            # measurements <= inconclusiveLimit: a limit >= count would pass a silent canary
            if "count" in metric:
                assert metric["inconclusiveLimit"] < metric["count"], metric["name"]
            assert "{{args.canary-hash}}" in metric["provider"]["prometheus"]["query"]
    queries = dict(analysis_queries(rendered["production"]))
    assert 'rollouts_pod_template_hash="5f7c9d8b6"' in queries["vllm-canary-step/success-rate"]
    assert "vllm:request_success_total" in queries["vllm-canary-step/success-rate"]
    assert 'status="5xx"' in queries["vllm-canary-step/http-error-rate"]
    for name in ("e2e-latency-p95-vs-stable", "ttft-p95-vs-stable"):  # compared with stable
        assert 'rollouts_pod_template_hash="6d9b7c5f4"' in queries[f"vllm-canary-step/{name}"]


@pytest.mark.parametrize("env", OVERLAYS)
def test_overlays_set_the_thresholds_from_their_canary_env(env, rendered):
    wanted = dict(
        line.split("=", 1)
        for line in (ROOT / f"manifests/overlays/{env}/canary.env").read_text().splitlines()
        if line.strip()
    )
    step = by_kind(rendered[env], "AnalysisTemplate", "vllm-canary-step")
    args = {a["name"]: a.get("value") for a in step["spec"]["args"]}
    assert args["min-success-rate"] == wanted["MIN_SUCCESS_RATE"]
    assert args["max-latency-ratio"] == wanted["MAX_LATENCY_RATIO"]
    assert args["prometheus"] == wanted["PROMETHEUS_URL"]
    assert not [o for o in rendered[env] if o["metadata"]["name"] == "canary-thresholds"]


def test_a_new_release_record_changes_only_the_model_configmap_and_pod_template(tmp_path):
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    overlay = tmp_path / "manifests/overlays/production"
    before = render(overlay)
    record = yaml.safe_load((overlay / "model-release.yaml").read_text())
    record["model"]["version"] = 7
    record["model"]["adapter"]["uri"] = record["model"]["adapter"]["uri"].replace("/v0/", "/v7/")
    for path, data in release_files("production", record).items():
        (tmp_path / path).write_bytes(data)
    after = render(overlay)

    def key(o):
        return o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"])

    old, new = {key(o): o for o in before}, {key(o): o for o in after}
    assert old.keys() == new.keys()
    changed = {k for k in old if old[k] != new[k]}
    assert changed == {("ConfigMap", "vllm-model"), ("Rollout", "vllm")}
    assert (
        old["ConfigMap", "vllm-model"]["metadata"]["name"]
        != new["ConfigMap", "vllm-model"]["metadata"]["name"]
    )
    r_old, r_new = old["Rollout", "vllm"], new["Rollout", "vllm"]
    assert r_old["spec"]["template"] != r_new["spec"]["template"]
    r_old["spec"].pop("template"), r_new["spec"].pop("template")
    a_old, a_new = (r["metadata"].pop("annotations") for r in (r_old, r_new))
    assert r_old == r_new  # nothing but the pod template and the release's annotations
    assert {k for k in a_old if a_old[k] != a_new[k]} == {
        "flywheel.io/model-version",
        "flywheel.io/release-sha256",
    }
    assert a_new["flywheel.io/model-version"] == "7"


def test_promtool_unit_tests_cover_every_alert_firing_and_not(rendered, tmp_path):
    rules = alert_rules(rendered["production"])
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True))
    tests_file = ROOT / "manifests/base/monitoring/alerts.test.yaml"
    shutil.copy(tests_file, tmp_path / "alerts.test.yaml")
    proc = promtool("test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "VLLMHighErrorRate",
        "VLLMHighLatencyP95",
        "VLLMHighTimeToFirstToken",
        "VLLMQueueBacklog",
        "VLLMKVCacheNearlyFull",
        "VLLMNoTraffic",
        "LLMDataDrift",
    } <= alerts
    cases = [
        c for t in yaml.safe_load(tests_file.read_text())["tests"] for c in t["alert_rule_test"]
    ]
    for alert in alerts:
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert} never shown firing"
        firing = [a for c in mine for a in c["exp_alerts"]]
        assert any(c["exp_alerts"] == [] for c in mine) or all(
            a["exp_labels"].get("namespace") == "bad" for a in firing
        ), f"{alert} never shown quiet"


def test_kv_cache_alert_uses_the_current_metric_name(rendered):
    exprs = " ".join(
        r["expr"] for g in alert_rules(rendered["production"])["groups"] for r in g["rules"]
    )
    assert "vllm:kv_cache_usage_perc" in exprs and "gpu_cache_usage_perc" not in exprs


def test_feedback_cronjob_samples_and_pushes_nightly_as_non_root_with_the_key_from_a_secret():
    objs = render(ROOT / "manifests/feedback")
    cron = by_kind(objs, "CronJob", "flywheel-feedback")
    assert cron["spec"]["schedule"] == "0 2 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert policy_errors(cron) == []
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["LABEL_STUDIO_API_KEY"]["valueFrom"]["secretKeyRef"]["name"]
    assert "value" not in env["LABEL_STUDIO_API_KEY"]
    script = by_kind(objs, "ConfigMap", "flywheel-feedback-script")["data"]["feedback.sh"]
    assert "llmops feedback sample --logs" in script and "llmops feedback push" in script
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/logs"]["readOnly"] is True
    # the policy does look inside a CronJob's pod template
    broken = copy.deepcopy(cron)
    broken["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    assert "image 'x' is not pinned" in "\n".join(policy_errors(broken))


def test_drift_cronjob_pushes_to_the_pushgateway_that_prometheus_scrapes_keeping_its_labels():
    objs = render(ROOT / "manifests/feedback")
    cron = by_kind(objs, "CronJob", "flywheel-drift")
    assert policy_errors(cron) == []
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    # the gauges carry the namespace the job runs in: the serving namespace the alert groups by
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    host, _, port = env["PUSHGATEWAY_URL"]["value"].removeprefix("http://").partition(":")
    service = by_kind(objs, "Service", host)
    assert service["metadata"]["name"] == host
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    gateway = by_kind(objs, "Deployment", host)
    assert policy_errors(gateway) == []
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = by_kind(objs, "ServiceMonitor", host)
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    # without honorLabels Prometheus would rename the pushed namespace to exported_namespace
    assert endpoint["honorLabels"] is True
    args = gateway["spec"]["template"]["spec"]["containers"][0]["args"]
    assert any(a.startswith("--persistence.file=/data/") for a in args)


@pytest.mark.parametrize(("drift_exit", "job_exit"), [(0, 0), (1, 0), (2, 2)])
def test_drift_script_counts_a_drift_verdict_as_done_and_fails_on_errors(
    tmp_path, drift_exit, job_exit
):
    """drift.sh with git, dvc and python replaced by stubs that log their arguments."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    for name, body in {
        "git": 'mkdir -p "${@: -1}"',  # git clone ... DEST
        "dvc": "",
        "python": f"exit {drift_exit}",
    }.items():
        (stubs / name).write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> {calls}\n{body}\n')
        (stubs / name).chmod(0o755)
    env = {
        "PATH": f"{stubs}:/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "LOGS": "/logs",
        "GIT_URL": "https://git.example/flywheel.git",
        "GIT_REF": "main",
        "PUSHGATEWAY_URL": "http://flywheel-pushgateway:9091",
    }
    script = ROOT / "manifests/feedback/drift.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == job_exit, proc.stderr
    git, dvc, python = calls.read_text().splitlines()
    assert git.startswith("git clone") and "--branch main" in git
    assert dvc == "dvc pull --quiet index"
    yesterday = subprocess.run(
        ["date", "-u", "-d", "yesterday", "+%F"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert python == (
        f"python -m pipeline.cli drift --logs /logs/{yesterday} "
        "--pushgateway http://flywheel-pushgateway:9091"
    )


@pytest.mark.parametrize("env", OVERLAYS)
def test_an_abort_notifies_once_naming_the_release_and_rollbacks_are_fast(rendered, env):
    """progressDeadlineAbort: pods that never become ready abort (and notify); one trigger per
    failure (a failed analysis aborts, so on-analysis-run-failed would send a second); the
    Rollout's annotations carry the release the payload names; rollbackWindow skips the
    canary when going back to a recent release."""
    rollout = by_kind(rendered[env], "Rollout")
    spec, annotations = rollout["spec"], rollout["metadata"]["annotations"]
    assert spec["progressDeadlineAbort"] is True and spec["progressDeadlineSeconds"] > 0
    assert spec["rollbackWindow"]["revisions"] >= 1
    subscriptions = [k for k in annotations if k.startswith("notifications.argoproj.io/")]
    assert subscriptions == ["notifications.argoproj.io/subscribe.on-rollout-aborted.github"]
    record = (ROOT / "manifests/overlays" / env / "model-release.yaml").read_bytes()
    model = by_kind(rendered[env], "ConfigMap", "vllm-model-")["data"]
    assert annotations["flywheel.io/release-sha256"] == model["RELEASE_SHA256"]
    assert model["RELEASE_SHA256"] == hashlib.sha256(record).hexdigest()
    assert annotations["flywheel.io/model-version"] == model["MODEL_VERSION"]
    notifications = yaml.safe_load((ROOT / "argocd/notifications.yaml").read_text())["data"]
    body = notifications["template.rollout-aborted-dispatch"]
    assert '"flywheel.io/release-sha256"' in body and '"release_sha256"' in body
    assert set(k for k in notifications if k.startswith("trigger.")) == {
        "trigger.on-rollout-aborted"
    }


def test_production_pins_the_shared_manifests_it_references_to_one_commit(tmp_path):
    """Once released, production renders the base and components at the released commit,
    fetched (here) from this clone; a base change after it reaches staging only."""
    from pipeline.release.record import pin_shared, repo_url

    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    overlay = tmp_path / "production"
    shutil.copytree(ROOT / "manifests/overlays/production", overlay)
    kustomization = overlay / "kustomization.yaml"
    kustomization.write_text(pin_shared(kustomization.read_text(), repo_url(ROOT / APPSET), head))
    # a scratch overlay outside the clone: map the repository's URL to it by hand
    env = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{ROOT.as_uri()}.insteadOf",
        "GIT_CONFIG_VALUE_0": repo_url(ROOT / APPSET),
    }
    proc = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    pinned = {o["kind"] for o in yaml.safe_load_all(proc.stdout) if o}
    assert {"Rollout", "AnalysisTemplate", "HorizontalPodAutoscaler"} <= pinned


@pytest.mark.parametrize("env", OVERLAYS)
def test_every_shipped_analysis_template_is_valid_and_predictable(rendered, env):
    """Argo's ValidateMetrics accepts every shipped metric, and every condition compiles
    (expr's type checks) and runs on an empty vector and on a sample: no Error, nothing this
    machine cannot predict."""
    from pipeline.deploy.analysis import CANNOT_PREDICT, measure, metrics_of

    templates = [o for o in rendered[env] if o["kind"] == "AnalysisTemplate"]
    assert templates
    for template in templates:
        args = {a["name"]: a.get("value") or "1" for a in template["spec"].get("args", [])}
        for m in metrics_of(template, args):
            assert not m.unsupported, (template["metadata"]["name"], m.name)
            for sample in ([], [0.5], [math.nan]):
                phase, _, message = measure(m, lambda a, q, v=sample: v)
                assert phase not in ("Error", CANNOT_PREDICT), (m.name, sample, message)


def adapter_archive(path, members):
    """A .tar.gz of (name, tar type, bytes or link target) members; its sha256."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                info.linkname = data
                tar.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()


HOSTILE = [
    ("an adapter", [("adapter_config.json", tarfile.REGTYPE, b"{}")], False),
    ("a path out of the folder", [("../../escaped", tarfile.REGTYPE, b"x")], True),
    ("an absolute path", [("/escaped-abs", tarfile.REGTYPE, b"x")], False),  # made relative
    ("a link out of the folder", [("config", tarfile.SYMTYPE, "/etc/passwd")], True),
    ("a hard link out of the folder", [("config", tarfile.LNKTYPE, "../../escaped")], True),
    ("a character device", [("dev", tarfile.CHRTYPE, "")], True),
    ("a FIFO", [("fifo", tarfile.FIFOTYPE, "")], True),
]


@pytest.mark.parametrize("case, members, refused", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_the_adapter_init_container_extracts_only_plain_files_inside_its_folder(
    rendered, tmp_path, case, members, refused
):
    """The verify-adapter initContainer's own script, run on hostile archives: paths out of
    the folder, links and devices are refused (tarfile's `data` filter); nothing lands
    outside /adapters/<name>; an archive whose sha256 is not the record's is refused."""
    rollout = by_kind(rendered["staging"], "Rollout")
    (init,) = [
        c
        for c in rollout["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "verify-adapter"
    ]
    root = tmp_path / "adapters"
    dest = root / "nested" / "adapter"
    dest.mkdir(parents=True)  # so that only the filter, not a missing folder, stops an escape
    script = init["command"][-1].replace("/adapters", str(root))
    env = {**os.environ, "ADAPTER_NAME": "nested/adapter"}
    digest = adapter_archive(root / "adapter.tar.gz", members)
    wrong = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**env, "ADAPTER_SHA256": "0" * 64},
    )
    assert wrong.returncode != 0 and "!= release record" in wrong.stderr
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**env, "ADAPTER_SHA256": digest},
    )
    assert (proc.returncode != 0) == refused, (case, proc.stderr)
    escaped = [p for p in tmp_path.rglob("*escaped*") if dest not in p.parents]
    assert escaped == [], escaped
    if not refused:
        assert "adapter verified" in proc.stdout and any(dest.iterdir())
