#!/usr/bin/env python3
"""Offline tests of the procforest Helm chart.

Renders the chart with Helm v4's own library (PyPI helm-python-sdk), lints it strictly,
validates every rendered manifest with kubernetes-validate --strict for Kubernetes 1.31 and
newer, and checks procforest's own invariants on the rendered YAML. Needs:
    pip install -r tests/requirements.txt   (what .ci/run installs into ~/.cache/procforest/venv)
Run: python3 helm/tests/test_chart.py   (exit 0 = all passed)
"""
import copy
import subprocess
import sys
import tempfile
from pathlib import Path

import helm_python
import yaml

CHART = Path(__file__).resolve().parent.parent / "procforest"
KUBE_VERSIONS = ["1.31.0", "1.33.0"]
FAILURES = []


def check(condition, message):
    if not condition:
        FAILURES.append(message)


def values_file(name):
    return yaml.safe_load((CHART / name).read_text())


def merged(*overrides):
    """The chart's values with overrides applied, as Helm merges them."""
    out = copy.deepcopy(values_file("values.yaml"))
    for o in overrides:
        stack = [(out, o)]
        while stack:
            dst, src = stack.pop()
            for k, v in src.items():
                if isinstance(v, dict) and isinstance(dst.get(k), dict):
                    stack.append((dst[k], v))
                else:
                    dst[k] = v
    return out


CASES = {
    "default": {},
    "aks": values_file("values-aks.yaml"),
    "local": values_file("values-local.yaml"),
    "keda": {"keda": {"enabled": True, "assumeApiAvailable": True}},
    "keda-without-api": {"keda": {"enabled": True}},
    "networkpolicy": {"networkPolicy": {"enabled": True}},
    "soc": {"job": {"preset": "soc"}},
    "soc-overridden": {"job": {"preset": "soc", "contamination": "0.02", "maxSamples": 512}},
}


def render(chart, values):
    out = chart.render(values, name="pf", namespace="security")
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    notes = next((t for p, t in out.items() if p.endswith("NOTES.txt")), "")
    return docs, notes


def pod_specs(doc):
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [doc["spec"]["template"]["spec"]]
    if kind == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    return []


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def named(docs, kind, suffix):
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    check(len(found) == 1, f"expected one {kind} named *{suffix}, found {len(found)}")
    return found[0] if found else None


def flags(container):
    out = {}
    for a in container.get("args", []):
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            out[k] = v
    return out


def quantity_bytes(q):
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for u, m in units.items():
        if q.endswith(u):
            return int(q[: -len(u)]) * m
    return int(q)


def check_invariants(case, docs, notes, values):
    for d in docs:
        for spec in pod_specs(d):
            name = f"{case}: {d['kind']} {d['metadata']['name']}"
            psc = spec.get("securityContext", {})
            check(psc.get("runAsNonRoot") is True, f"{name}: pod not runAsNonRoot")
            check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp")
            for c in spec["containers"]:
                sc = c.get("securityContext", {})
                check(sc.get("readOnlyRootFilesystem") is True, f"{name}: root filesystem writable")
                check(sc.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation")
                check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities")
                check(sc.get("runAsNonRoot") is True, f"{name}: container not runAsNonRoot")
                check("resources" in c and "limits" in c["resources"], f"{name}: no limits")
                if d["kind"] == "Deployment":
                    check("livenessProbe" in c and "readinessProbe" in c, f"{name}: probes missing")
                else:
                    check("livenessProbe" in c, f"{name}: liveness probe missing")
    sched = named(docs, "Deployment", "-scheduler")
    execd = named(docs, "Deployment", "-executor")
    reg = named(docs, "Service", "-scheduler-registration")
    client = named(docs, "Service", "-scheduler")
    cron = named(docs, "CronJob", "-driver")
    cm = named(docs, "ConfigMap", "pf-procforest")
    if not all([sched, execd, reg, client, cron, cm]):
        return
    check(sched["spec"]["replicas"] == 1, f"{case}: scheduler replicas")
    check(sched["spec"]["strategy"]["type"] == "Recreate", f"{case}: scheduler strategy")
    check(reg["spec"].get("publishNotReadyAddresses") is True, f"{case}: registration service")
    check(not client["spec"].get("publishNotReadyAddresses"), f"{case}: client service routes to ready pods only")
    sport = sched["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    check(reg["spec"]["ports"][0]["port"] == sport, f"{case}: registration port")
    check(client["spec"]["ports"][0]["port"] == sport, f"{case}: client port")
    ex = execd["spec"]["template"]["spec"]["containers"][0]
    f = flags(ex)
    check(f.get("scheduler-host") == reg["metadata"]["name"], f"{case}: executors register via the registration service")
    check(int(f.get("scheduler-port", 0)) == sport, f"{case}: executor scheduler port")
    ports = {p["name"]: p["containerPort"] for p in ex["ports"]}
    check(int(f["bind-port"]) == ports["flight"] and int(f["bind-grpc-port"]) == ports["grpc"]
          and int(f["bind-health-port"]) == ports["health"], f"{case}: executor ports vs flags")
    probe_ports = {ex["livenessProbe"]["httpGet"]["port"], ex["readinessProbe"]["httpGet"]["port"]}
    check(probe_ports == {"health"}, f"{case}: executor probes on the health port")
    limits = ex["resources"]["limits"]
    cpu = str(limits["cpu"])
    cores = int(cpu[:-1]) // 1000 if cpu.endswith("m") else int(float(cpu))
    check(int(f["vcores"]) == max(1, cores), f"{case}: --vcores {f['vcores']} vs CPU limit {cpu}")
    check(0 < int(f["memory-pool-size"]) < quantity_bytes(limits["memory"]), f"{case}: memory pool below limit")
    check(f.get("work-dir") == "/work", f"{case}: work dir")
    vols = {v["name"]: v for v in execd["spec"]["template"]["spec"]["volumes"]}
    check("sizeLimit" in vols["work"].get("emptyDir", {}), f"{case}: work dir size limit")
    check(int(f.get("job-data-clean-up-interval-seconds", 0)) > 0, f"{case}: job data clean-up on")
    check(int(f.get("scheduler-connect-timeout-seconds", 0)) > 0, f"{case}: scheduler connect timeout")
    cs = cron["spec"]
    check(cs["concurrencyPolicy"] == "Forbid", f"{case}: concurrencyPolicy")
    for key in ("startingDeadlineSeconds", "timeZone", "schedule"):
        check(key in cs, f"{case}: CronJob {key}")
    js = cs["jobTemplate"]["spec"]
    for key in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        check(key in js, f"{case}: Job {key}")
    check(js["template"]["spec"]["restartPolicy"] == "Never", f"{case}: restartPolicy")
    check(cm["data"]["PROCFOREST_SCHEDULER"] == f"df://{client['metadata']['name']}:{sport}",
          f"{case}: the driver uses the client service")
    for k in cm["data"]:
        check(not any(w in k for w in ("SECRET", "KEY", "TOKEN", "PASSWORD")), f"{case}: {k} looks secret in a ConfigMap")
    # The preset decides every model setting the values leave empty: a rendered one would
    # override it (flags and PROCFOREST_* variables beside a preset win).
    job = values["job"]
    check(cm["data"]["PROCFOREST_PRESET"] == job["preset"], f"{case}: the preset")
    for key, env in (("features", "PROCFOREST_FEATURES"), ("trees", "PROCFOREST_TREES"),
                     ("maxSamples", "PROCFOREST_MAX_SAMPLES"),
                     ("contamination", "PROCFOREST_CONTAMINATION")):
        if job.get(key) in (None, ""):
            check(env not in cm["data"], f"{case}: {env} rendered though {key} is empty")
        else:
            check(cm["data"].get(env) == str(job[key]), f"{case}: {env} is the value's")
    sa = by_kind(docs, "ServiceAccount")
    wi = values.get("serviceAccount", {}).get("workloadIdentityClientId")
    if wi:
        check(sa and sa[0]["metadata"]["annotations"].get("azure.workload.identity/client-id") == wi, f"{case}: WI annotation")
        for d in docs:
            for spec in pod_specs(d):
                labels = (d["spec"].get("template") or d["spec"]["jobTemplate"]["spec"]["template"])["metadata"]["labels"]
                check(labels.get("azure.workload.identity/use") == "true", f"{case}: {d['kind']} WI label")
    pdb = by_kind(docs, "PodDisruptionBudget")
    check(bool(pdb) == values["executor"]["podDisruptionBudget"]["enabled"], f"{case}: PDB")
    netpol = by_kind(docs, "NetworkPolicy")
    check(bool(netpol) == values["networkPolicy"]["enabled"], f"{case}: NetworkPolicy presence")
    if netpol:
        ports = {p["port"] for rule in netpol[0]["spec"]["ingress"] if "from" in rule for p in rule["ports"]}
        check(ports == {sport, ports_of(ex, "flight"), ports_of(ex, "grpc")}, f"{case}: NetworkPolicy ports")
    keda = by_kind(docs, "ScaledObject")
    if case == "keda":
        check(len(keda) == 1 and keda[0]["spec"]["minReplicaCount"] == 0, f"{case}: ScaledObject")
        check(keda and keda[0]["spec"]["triggers"][0]["type"] == "cron", f"{case}: cron trigger")
        check("replicas" not in execd["spec"], f"{case}: KEDA owns the replica count")
    else:
        check(not keda, f"{case}: no ScaledObject without the API")
    if case == "keda-without-api":
        check("does not serve keda.sh/v1alpha1" in notes, f"{case}: NOTES warns about KEDA")
        check(execd["spec"].get("replicas") == values["executor"]["replicas"], f"{case}: replicas kept")


def ports_of(container, name):
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name)


def validate(case, docs):
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, d in enumerate(docs):
            if d["kind"] == "ScaledObject":  # a CRD: kubernetes-validate has no schema for it
                continue
            p = Path(tmp) / f"{i:02d}-{d['kind']}.yaml"
            p.write_text(yaml.safe_dump(d))
            files.append(str(p))
        for kv in KUBE_VERSIONS:
            r = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", kv, *files],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"{case}: kubernetes-validate {kv}: {r.stdout}{r.stderr}")


def main():
    chart = helm_python.Chart.load(str(CHART))
    for case, override in CASES.items():
        values = merged(override)
        lint = helm_python.lint(str(CHART), override, strict=True, kube_version="v1.31.0")
        problems = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + lint.get("errors", [])
        check(not problems, f"{case}: helm lint --strict: {problems}")
        docs, notes = render(chart, override)
        check(len(docs) >= 7, f"{case}: rendered {len(docs)} objects")
        validate(case, docs)
        check_invariants(case, docs, notes, values)
    bad_values = [
        {"job": {"trees": 0}},
        {"job": {"preset": "fast"}},
        {"job": {"features": "everything"}},
        {"job": {"interval": "week"}},
        {"job": {"window": "tomorrow"}},
        {"executor": {"workDir": {"sizeLimit": "lots"}}},
        {"executor": {"resources": {"limits": {"cpu": "two"}}}},
        {"driver": {"schedule": "every night"}},
        {"job": {"extraEnv": {"AZURE_CLIENT_SECRET": "x"}}},
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"unknownKey": 1},
        {"serviceAccount": {"workloadIdentityClientId": "not-a-guid"}},
    ]
    for bad in bad_values:
        try:
            chart.validate_schema(merged(bad))
            FAILURES.append(f"schema accepted bad values {bad}")
        except helm_python.HelmValuesError:
            pass
    for good in CASES.values():
        try:
            chart.validate_schema(merged(good))
        except helm_python.HelmValuesError as e:
            FAILURES.append(f"schema rejected good values {good}: {e}")
    if FAILURES:
        print("\n".join(FAILURES))
        return 1
    print(f"chart ok: {len(CASES)} value sets rendered, linted, validated for {KUBE_VERSIONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
