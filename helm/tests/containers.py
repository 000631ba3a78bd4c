#!/usr/bin/env python3
"""The containers a values file makes, as Kubernetes would start them, for a test that
starts them as local processes (tests/e2e/helm.rs).

Renders the chart (helm_python, as test_chart.py does) with VALUES (a file in the chart's
folder) and prints JSON: for each container of a Deployment, StatefulSet or CronJob, its
kind and object name, command, args, environment (envFrom config maps expanded, config
map keys resolved, a field reference as "fieldRef:<path>"), ports by name, probes (HTTP
probes with their port resolved to a number) and volume mount paths; and the names of
the chart's Services.

    python3 helm/tests/containers.py values-local.yaml
"""
import json
import sys

import helm_python

import test_chart


def env_of(container, config_maps):
    env = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var["valueFrom"]
        if "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[var["name"]] = config_maps[key["name"]][key["key"]]
        elif "fieldRef" in ref:
            env[var["name"]] = "fieldRef:" + ref["fieldRef"]["fieldPath"]
        else:
            sys.exit(f"{container['name']}: no way to resolve env {var}")
    return env


def probe_of(probe, ports):
    if not probe:
        return None
    if "httpGet" in probe:
        port = probe["httpGet"]["port"]
        return {"path": probe["httpGet"]["path"], "port": ports.get(port, port)}
    if "exec" in probe:
        return {"exec": probe["exec"]["command"]}
    sys.exit(f"unsupported probe {probe}")


def main():
    chart = helm_python.Chart.load(str(test_chart.CHART))
    docs, _ = test_chart.render(chart, test_chart.values_file(sys.argv[1]))
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in test_chart.by_kind(docs, "ConfigMap")}
    containers = []
    for doc in docs:
        for spec in test_chart.pod_specs(doc):
            for c in spec["containers"]:
                ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
                containers.append({
                    "kind": doc["kind"],
                    "name": doc["metadata"]["name"],
                    "command": c.get("command", []),
                    "args": c.get("args", []),
                    "env": env_of(c, config_maps),
                    "ports": ports,
                    "liveness": probe_of(c.get("livenessProbe"), ports),
                    "readiness": probe_of(c.get("readinessProbe"), ports),
                    "mounts": [m["mountPath"] for m in c.get("volumeMounts", [])],
                })
    services = [d["metadata"]["name"] for d in test_chart.by_kind(docs, "Service")]
    print(json.dumps({"containers": containers, "services": services}, indent=1))


if __name__ == "__main__":
    main()
