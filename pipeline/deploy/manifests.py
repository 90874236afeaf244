"""`llmops manifests check`: render every kustomization and validate what it would apply.

Run: make manifests   (or: llmops manifests check)

- `kubectl kustomize` of each overlay and of argocd/ and manifests/training/.
- Every object against its schema, strictly (an unknown field is an error): core kinds with
  kubernetes-validate, custom resources against their CRD's openAPIV3Schema. The CRDs come
  from the directories in $FLYWHEEL_CRDS (os.pathsep-separated), else the shared reference
  folder beside the repository, else the pinned upstream releases (downloaded once to
  .cache/crds). Kinds with no schema anywhere (Istio, Kubeflow) are listed, not guessed at.
- Policy: pinned images (no `:latest`), resource limits, non-root, no privilege escalation,
  dropped capabilities; for serving pods also a read-only root filesystem and all three
  probes.
- promtool: the PrometheusRule groups (`promtool check rules`), and every AnalysisTemplate
  query, its args filled in, parsed by Prometheus's own parser.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.commands import command
from pipeline.io import UserError

OVERLAYS_DIR = Path("manifests/overlays")
TARGETS = [
    Path("manifests/training"),
    Path("argocd"),
    Path("manifests/feedback"),
    Path("manifests/runners"),
]  # besides every overlay
SHARED_CRDS = Path("../shared/reference/crds")
CRD_CACHE = Path(".cache/crds")
# Pinned upstream releases, for machines without the shared reference folder
CRD_URLS = [
    "https://raw.githubusercontent.com/argoproj/argo-rollouts/v1.9.1/manifests/crds/rollout-crd.yaml",
    "https://raw.githubusercontent.com/argoproj/argo-rollouts/v1.9.1/manifests/crds/analysis-template-crd.yaml",
    "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/crds/application-crd.yaml",
    "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/crds/appproject-crd.yaml",
    "https://raw.githubusercontent.com/argoproj/argo-cd/v3.5.1/manifests/crds/applicationset-crd.yaml",
    "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.0/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    "https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/v0.93.0/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
]
KUBERNETES_VERSION = "1.32"
POD_KINDS = {"Rollout", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "PyTorchJob"}
# sample values for AnalysisTemplate args that the Rollout fills in at run time
SAMPLE_ARGS = {"canary-hash": "5f7c9d8b6", "stable-hash": "6d9b7c5f4", "namespace": "flywheel"}


@dataclass
class Report:
    objects: int = 0
    schema_checked: int = 0
    errors: list[str] = field(default_factory=list)
    unchecked_kinds: set[str] = field(default_factory=set)


def targets(root: Path = Path(".")) -> list[Path]:
    overlays = sorted(p for p in (root / OVERLAYS_DIR).iterdir() if p.is_dir())
    return overlays + [root / t for t in TARGETS]


def local_repo_env(path: Path) -> dict[str, str]:
    """Environment for kustomize that fetches this repository's URL (production's pinned
    shared manifests, `<repoURL>//manifests/base?ref=<sha>`) from the local clone instead of
    the network: git's url.<local>.insteadOf. The commit must be in the local clone."""
    from pipeline.release.record import APPLICATIONSET, repo_url

    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=path, capture_output=True, text=True
    ).stdout.strip()
    if not top or not (Path(top) / APPLICATIONSET).exists():
        return {}
    url = repo_url(Path(top) / APPLICATIONSET)
    count = int(os.environ.get("GIT_CONFIG_COUNT", "0"))
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": f"url.{Path(top).resolve().as_uri()}.insteadOf",
        f"GIT_CONFIG_VALUE_{count}": url,
    }


def render(path: Path) -> list[dict]:
    """The objects `kubectl kustomize path` renders (this repository's URL served from the
    local clone)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise UserError("kubectl not found: install it (kustomize is built in) and rerun")
    proc = subprocess.run(
        [kubectl, "kustomize", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **local_repo_env(path)},
    )
    if proc.returncode != 0:
        raise UserError(f"{path}: kubectl kustomize failed: {proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


# --- custom resources: CRD openAPIV3Schema as strict JSON Schema ----------------------------


def strict_schema(node: Any) -> Any:
    """A CRD's structural OpenAPI v3 schema as JSON Schema in which unknown fields are errors
    (except under x-kubernetes-preserve-unknown-fields), int-or-string is either, and
    nullable allows null."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_dirs() -> list[Path]:
    """Where CRDs are read from, in order of preference (later files win)."""
    if os.environ.get("FLYWHEEL_CRDS"):
        return [Path(p) for p in os.environ["FLYWHEEL_CRDS"].split(os.pathsep)]
    if SHARED_CRDS.is_dir():
        return [SHARED_CRDS, SHARED_CRDS / "release"]  # released versions win over HEAD
    if not any(CRD_CACHE.glob("*.yaml")):
        download_crds(CRD_CACHE)
    return [CRD_CACHE]


def download_crds(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for url in CRD_URLS:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                (dest / url.rsplit("/", 1)[1]).write_bytes(response.read())
        except OSError as exc:
            raise UserError(
                f"cannot download {url} ({exc}): put the CRD YAML files in a directory and"
                " set FLYWHEEL_CRDS to it"
            ) from None


def crd_schemas(dirs: list[Path]) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict JSON Schema, from every CRD file in `dirs`."""
    schemas = {}
    for d in dirs:
        for path in sorted(d.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema:
                        key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                        schemas[key] = strict_schema(schema)
    return schemas


def is_core(api_version: str) -> bool:
    """Kinds kubernetes-validate knows: the core group and the *.k8s.io / dotless groups."""
    group = api_version.rpartition("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def schema_errors(obj: dict, schemas: dict[tuple[str, str], dict]) -> list[str] | None:
    """Errors of one object against its schema; None when no schema is known for its kind."""
    import jsonschema

    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in schemas:
        validator = jsonschema.Draft7Validator(schemas[key])
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        ]
    if is_core(key[0]):
        import kubernetes_validate

        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return [f"{'.'.join(map(str, exc.absolute_path)) or '(top)'}: {exc.message}"]
        except kubernetes_validate.SchemaNotFoundError:
            return None
        return []
    return None


# --- policy --------------------------------------------------------------------------------


RUNNER_CHART = "gha-runner-scale-set"  # actions-runner-controller's scale set


def runner_template(obj: dict) -> dict | None:
    """The runner pod template an Argo CD Application (or ApplicationSet) of ARC's scale-set
    chart installs: its Helm values' `template`."""
    if obj.get("kind") not in {"Application", "ApplicationSet"}:
        return None
    spec = obj.get("spec", {})
    if obj["kind"] == "ApplicationSet":
        spec = spec.get("template", {}).get("spec", {})
    source = spec.get("source", {})
    if source.get("chart") != RUNNER_CHART:
        return None
    return source.get("helm", {}).get("valuesObject", {}).get("template", {})


def runner_errors(template: dict) -> list[str]:
    """A CI runner pod: its schema (a core PodTemplate), and nothing that outlives the pod
    (no node path, no claim) nor a Kubernetes token for the job's code."""
    import kubernetes_validate

    errors = []
    try:
        kubernetes_validate.validate(
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "runner"},
                "template": template,
            },
            KUBERNETES_VERSION,
            strict=True,
        )
    except kubernetes_validate.ValidationError as exc:
        errors.append(f"runner template: {'.'.join(map(str, exc.absolute_path))}: {exc.message}")
    spec = template.get("spec", {})
    for volume in spec.get("volumes", []):
        if set(volume) - {"name", "emptyDir", "secret", "configMap", "projected"}:
            errors.append(f"runner volume {volume['name']}: only emptyDir, secrets and config")
    if spec.get("automountServiceAccountToken") is not False:
        errors.append("runner pod: automountServiceAccountToken must be false")
    return errors


def pod_spec(obj: dict) -> dict | None:
    template = runner_template(obj)
    if template is not None:
        return template.get("spec")
    if obj.get("kind") == "PyTorchJob":
        specs = obj["spec"]["pytorchReplicaSpecs"]
        return next(iter(specs.values()))["template"]["spec"]
    if obj.get("kind") in POD_KINDS:
        spec = obj.get("spec", {})
        return (spec.get("jobTemplate", {}).get("spec", spec)).get("template", {}).get("spec")
    return None


def policy_errors(obj: dict) -> list[str]:
    pod = pod_spec(obj)
    if pod is None:
        return []
    errors = []
    serving = obj["kind"] in {"Rollout", "Deployment", "StatefulSet"}
    pod_non_root = pod.get("securityContext", {}).get("runAsNonRoot") is True
    containers = [("container", c) for c in pod.get("containers", [])]
    containers += [("initContainer", c) for c in pod.get("initContainers", [])]
    for role, c in containers:
        where = f"{role} {c['name']}"
        image = c.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2] if "@" not in image else "digest"
        if not tag or tag == "latest":
            errors.append(f"{where}: image {image!r} is not pinned to a version")
        limits = c.get("resources", {}).get("limits", {})
        if "memory" not in limits:
            errors.append(f"{where}: no memory limit")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{where}: allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            errors.append(f"{where}: capabilities must drop ALL")
        if not (pod_non_root or sc.get("runAsNonRoot") is True):
            errors.append(f"{where}: must run as non-root (runAsNonRoot: true)")
        if serving and sc.get("readOnlyRootFilesystem") is not True:
            errors.append(f"{where}: a serving container needs readOnlyRootFilesystem: true")
        if serving and role == "container":
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    errors.append(f"{where}: no {probe}")
    return errors


# --- PromQL --------------------------------------------------------------------------------


def alert_rules(objs: list[dict]) -> dict:
    """The rule groups of every PrometheusRule, as a Prometheus rules file."""
    return {
        "groups": [g for o in objs if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"]]
    }


def fill_args(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", lambda m: args.get(m.group(1), "0"), text)


def analysis_queries(objs: list[dict]) -> list[tuple[str, str]]:
    """(template/metric, query with its args filled in) of every Prometheus metric in every
    AnalysisTemplate."""
    out = []
    for o in objs:
        if o["kind"] not in {"AnalysisTemplate", "ClusterAnalysisTemplate"}:
            continue
        args = {
            a["name"]: a.get("value", SAMPLE_ARGS.get(a["name"], "0"))
            for a in o["spec"].get("args", [])
        }
        for m in o["spec"]["metrics"]:
            prom = m.get("provider", {}).get("prometheus")
            if prom:
                out.append((f"{o['metadata']['name']}/{m['name']}", fill_args(prom["query"], args)))
    return out


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if not exe:
        raise UserError("promtool not found: install Debian's `prometheus` (make tools)")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)


def promql_errors(objs: list[dict]) -> list[str]:
    """`promtool check rules` on the alert groups, and on every analysis query (as a
    recording rule: Prometheus parses it the same way)."""
    queries = analysis_queries(objs)
    files = {
        "alerts.yaml": alert_rules(objs),
        "analysis.yaml": {
            "groups": [
                {
                    "name": "analysis",
                    "rules": [
                        {"record": f"analysis:{i}", "expr": q} for i, (_, q) in enumerate(queries)
                    ],
                }
            ]
        },
    }
    errors = []
    with tempfile.TemporaryDirectory(prefix="flywheel-promql-") as work:
        for name, rules in files.items():
            if not rules["groups"] or not any(g["rules"] for g in rules["groups"]):
                continue
            Path(work, name).write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False))
            proc = promtool("check", "rules", name, cwd=Path(work))
            if proc.returncode != 0:
                detail = (proc.stdout + proc.stderr).strip()
                for i, (where, _) in enumerate(queries):  # name the template, not the index
                    detail = detail.replace(f"analysis:{i}", where)
                errors.append(f"promtool check rules ({name}): {detail}")
    return errors


# --- the whole check -----------------------------------------------------------------------


def check(path: Path, schemas: dict[tuple[str, str], dict]) -> Report:
    objs = render(path)
    report = Report(objects=len(objs))
    for obj in objs:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        errors = schema_errors(obj, schemas)
        if errors is None:
            report.unchecked_kinds.add(f"{obj.get('apiVersion')} {obj.get('kind')}")
        else:
            report.schema_checked += 1
            report.errors += [f"{path}: {name}: {e}" for e in errors]
        report.errors += [f"{path}: {name}: {e}" for e in policy_errors(obj)]
        runner = runner_template(obj)
        if runner is not None:
            report.errors += [f"{path}: {name}: {e}" for e in runner_errors(runner)]
    report.errors += [f"{path}: {e}" for e in promql_errors(objs)]
    return report


@command(
    "manifests", "check", help="render every kustomization; validate schemas, policy and PromQL"
)
def main() -> int:
    dirs = crd_dirs()
    schemas = crd_schemas(dirs)
    print(f"manifests: {len(schemas)} CRD schemas from {', '.join(map(str, dirs))}")
    failed = 0
    for path in targets():
        report = check(path, schemas)
        failed += len(report.errors)
        unchecked = (
            f"; no schema for {', '.join(sorted(report.unchecked_kinds))}"
            if report.unchecked_kinds
            else ""
        )
        print(
            f"manifests: {path}: {report.objects} objects, {report.schema_checked} validated"
            f" strictly, {len(report.errors)} errors{unchecked}"
        )
        for e in report.errors:
            print(f"  error: {e}")
    verdict = "FAILED" if failed else "passed"
    print(f"manifests: {verdict}: {failed} errors in {len(targets())} kustomizations")
    return 1 if failed else 0
