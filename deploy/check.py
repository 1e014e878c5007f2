#!/usr/bin/env python3
"""Checks the production artefacts against regions.toml, without a cluster.

Every manifest under deploy/k8s must parse, and what the manifests and systemd units
say must agree with the region map: worker names and ports, admin ports (probes,
Prometheus), the environment variables and secret files the map names, the gateway's
certificate paths, the hardening every container carries. A change to one side that
forgets the other fails here (tests/run.sh runs it first), not at deploy time.

Usage: python3 deploy/check.py   (needs PyYAML; Python 3.11+ for tomllib)
"""

import pathlib
import re
import sys
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SYSTEMD = ROOT / "deploy" / "systemd"

problems = []


def check(ok, message):
    if not ok:
        problems.append(message)


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def load_manifests():
    """Every document of every manifest, by (kind, namespace, name)."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except yaml.YAMLError as e:
            problems.append(f"{path.name}: not YAML: {e}")
            continue
        if path.name == "kustomization.yaml":
            listed = set(docs[0].get("resources", []))
            on_disk = {p.name for p in K8S.glob("*.yaml")} - {
                "kustomization.yaml",
                "secrets.example.yaml",
            }
            check(listed == on_disk, f"kustomization.yaml lists {sorted(listed)}, not {sorted(on_disk)}")
            check("secrets.example.yaml" not in listed, "the example Secrets must never be applied")
            continue
        for d in docs:
            meta = d.get("metadata", {})
            objects[(d["kind"], meta.get("namespace"), meta["name"])] = (path.name, d)
    return objects


def containers_hardened(where, pod):
    sc = pod.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, f"{where}: pod must set runAsNonRoot")
    check(pod.get("automountServiceAccountToken") is False, f"{where}: no service account token")
    for c in pod["containers"]:
        csc = c.get("securityContext", {})
        check(csc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
        check(csc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false")
        check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL capabilities")
        res = c.get("resources", {})
        check("requests" in res and "memory" in res.get("limits", {}), f"{where}: requests and a memory limit")


def named_port(container, name):
    for p in container.get("ports", []):
        if p.get("name") == name:
            return p["containerPort"]
    return None


def probe_port(container, probe):
    port = container.get(probe, {}).get("httpGet", {}).get("port")
    return named_port(container, port) if isinstance(port, str) else port


def covered_by_mount(container, volumes, path):
    """Whether `path` is a file the container sees from a mounted Secret or ConfigMap."""
    for m in container.get("volumeMounts", []):
        mount = m["mountPath"].rstrip("/")
        vol = volumes[m["name"]]
        if "subPath" in m:
            if path == mount:
                return True
            continue
        if not path.startswith(mount + "/"):
            continue
        rel = path[len(mount) + 1 :]
        items = (vol.get("secret") or vol.get("configMap") or {}).get("items")
        # Without items every key of the Secret appears as a file named after it.
        return items is None or any(i["path"] == rel for i in items)
    return False


def check_pdb(objects, ns, name, labels):
    pdb = objects.get(("PodDisruptionBudget", ns, name))
    check(pdb is not None, f"no PodDisruptionBudget {ns}/{name}")
    if pdb:
        spec = pdb[1]["spec"]
        check(spec.get("minAvailable") == 1, f"PDB {ns}/{name}: minAvailable 1")
        sel = spec["selector"]["matchLabels"]
        check(all(labels.get(k) == v for k, v in sel.items()), f"PDB {ns}/{name} selects no pod")


def check_region(objects, rid, region, env_secrets):
    ns, name = f"closedloop-{rid}", f"region-worker-{rid}"
    check(("Namespace", None, ns) in objects, f"no Namespace {ns}")
    sts = objects.get(("StatefulSet", ns, name))
    svc = objects.get(("Service", ns, name))
    check(sts is not None, f"no StatefulSet {ns}/{name}")
    check(svc is not None, f"no Service {ns}/{name}")
    if not (sts and svc):
        return
    spec = sts[1]["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    where = f"{sts[0]} {name}"
    containers_hardened(where, pod)
    check(spec["serviceName"] == name, f"{where}: serviceName must be {name}")
    check(c["args"][-2:] == ["--region", rid], f"{where}: must serve --region {rid}")

    # regions.toml's workers are exactly this StatefulSet's pods, on the public port.
    listen, admin = port_of(region["worker_listen"]), port_of(region["worker_admin_listen"])
    expected = [f"{name}-{i}.{name}.{ns}.svc.cluster.local:{listen}" for i in range(spec["replicas"])]
    workers = [w if isinstance(w, str) else w["addr"] for w in region["workers"]]
    check(workers == expected, f"regions.toml [regions.{rid}] workers {workers} != StatefulSet pods {expected}")
    check(named_port(c, "http") == listen, f"{where}: http port != worker_listen {listen}")
    check(named_port(c, "admin") == admin, f"{where}: admin port != worker_admin_listen {admin}")
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        check(probe_port(c, probe) == admin, f"{where}: {probe} not on the admin port")
        check(c.get(probe, {}).get("httpGet", {}).get("path") == path, f"{where}: {probe} must GET {path}")
    ann = spec["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == str(admin), f"{where}: Prometheus port != {admin}")

    s = svc[1]["spec"]
    check(s.get("clusterIP") == "None", f"Service {name} must be headless")
    check({p["port"] for p in s["ports"]} == {listen, admin}, f"Service {name}: ports {listen}, {admin}")
    check(all(labels.get(k) == v for k, v in s["selector"].items()), f"Service {name} selects no pod")
    check_pdb(objects, ns, name, labels)

    # Every secret the map names reaches the worker: env from the region's Secret,
    # files from a mount of it.
    env = {e["name"]: e for e in c.get("env", [])}
    config_mounted = covered_by_mount(c, volumes, "/etc/closedloop/regions.toml")
    check(config_mounted and "/etc/closedloop/regions.toml" in c["args"], f"{where}: regions.toml not mounted")
    for what in ["postgres", "redis", "encryption_key"]:
        source = region.get(what)
        if source is None:
            continue
        env_secrets.append((rid, source))
        if "env" in source:
            ref = env.get(source["env"], {}).get("valueFrom", {}).get("secretKeyRef", {})
            check(ref.get("name") == ns, f"{where}: {source['env']} must come from Secret {ns}")
        else:
            check(covered_by_mount(c, volumes, source["file"]), f"{where}: {source['file']} not mounted")
    for table in ["scim_oauth", "introspection"]:
        source = region.get(table, {}).get("client_secret")
        if source and "file" in source:
            check(covered_by_mount(c, volumes, source["file"]), f"{where}: {source['file']} not mounted")
            check(source["file"].startswith(f"/run/secrets/{ns}/"), f"{source['file']}: outside /run/secrets/{ns}")


def check_gateway(objects, gw):
    ns, name = "closedloop-gateway", "gateway"
    dep = objects.get(("Deployment", ns, name))
    svc = objects.get(("Service", ns, name))
    check(dep is not None and svc is not None, "no gateway Deployment and Service")
    if not (dep and svc):
        return
    pod = dep[1]["spec"]["template"]["spec"]
    labels = dep[1]["spec"]["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers_hardened("gateway.yaml gateway", pod)
    args = dict(a.lstrip("-").split("=", 1) for a in c["args"])
    check(covered_by_mount(c, volumes, args.get("config", "")), "gateway: --config not mounted")
    # The command line overrides regions.toml's listeners (unprivileged ports).
    plain = port_of(args.get("listen", gw.get("listen", ":0")))
    tls = port_of(args.get("tls-listen", gw.get("tls_listen", ":0")))
    admin = port_of(gw["admin_listen"])
    check(named_port(c, "http") == plain, f"gateway: http port != {plain}")
    check(named_port(c, "https") == tls, f"gateway: https port != {tls}")
    check(named_port(c, "admin") == admin, f"gateway: admin port != admin_listen {admin}")
    for probe in ["readinessProbe", "livenessProbe"]:
        check(probe_port(c, probe) == admin, f"gateway: {probe} not on the admin port")
    ann = dep[1]["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == str(admin), f"gateway: Prometheus port != {admin}")
    for cert in gw.get("certificates", []):
        for f in [cert["cert"], cert["key"]]:
            check(covered_by_mount(c, volumes, f), f"gateway: certificate file {f} not mounted")
    s = svc[1]["spec"]
    check(s.get("type") == "LoadBalancer", "gateway Service must be a LoadBalancer")
    ports = {p["port"]: p["targetPort"] for p in s["ports"]}
    check(ports.get(443) == "https", "gateway Service: 443 → https")
    check(all(labels.get(k) == v for k, v in s["selector"].items()), "gateway Service selects no pod")
    check_pdb(objects, ns, name, labels)


def check_example_secrets(regions, env_secrets):
    """The example Secrets carry a key for every env variable and file the map names."""
    docs = list(yaml.safe_load_all((K8S / "secrets.example.yaml").read_text()))
    by_ns = {d["metadata"]["namespace"] + "/" + d["metadata"]["name"]: d for d in docs}
    for d in docs:
        for k, v in d.get("stringData", {}).items():
            check("PLACEHOLDER" in v, f"secrets.example.yaml {k}: values must be marked PLACEHOLDER")
    for rid, source in env_secrets:
        secret = by_ns.get(f"closedloop-{rid}/closedloop-{rid}", {}).get("stringData", {})
        if "file" in source:
            key = source["file"].rsplit("/", 1)[1]
            check(key in secret, f"secrets.example.yaml closedloop-{rid}: no key {key}")
    for rid in regions:
        secret = by_ns.get(f"closedloop-{rid}/closedloop-{rid}", {}).get("stringData", {})
        check({"database-url", "redis-url"} <= set(secret), f"secrets.example.yaml closedloop-{rid}: store URLs")


def check_systemd(regions):
    worker = (SYSTEMD / "closedloop-region-worker@.service").read_text()
    gateway = (SYSTEMD / "closedloop-gateway.service").read_text()
    for text, unit in [(worker, "worker"), (gateway, "gateway")]:
        for directive in ["NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure"]:
            check(directive in text, f"systemd {unit}: missing {directive}")
    check("ExecReload=/bin/kill -HUP $MAINPID" in gateway, "systemd gateway: ExecReload must send SIGHUP")
    check("EnvironmentFile=/etc/closedloop/%i.env" in worker, "systemd worker: EnvironmentFile")
    check("BindReadOnlyPaths=%d:/run/secrets/closedloop-%i" in worker, "systemd worker: credentials bind")
    loaded = set(re.findall(r"^LoadCredential=([^:]+):", worker, re.M))
    for rid, region in regions.items():
        for source in [region.get("encryption_key")] + [
            region.get(t, {}).get("client_secret") for t in ["scim_oauth", "introspection"]
        ]:
            if source and "file" in source:
                base = source["file"].rsplit("/", 1)[1]
                check(
                    source["file"] == f"/run/secrets/closedloop-{rid}/{base}" and base in loaded,
                    f"systemd worker: {source['file']} is not a LoadCredential",
                )


def main():
    regions_toml = tomllib.loads((ROOT / "regions.toml").read_text())
    objects = load_manifests()
    env_secrets = []
    regions = regions_toml["regions"]
    for rid, region in regions.items():
        check_region(objects, rid, region, env_secrets)
    check_gateway(objects, regions_toml.get("gateway", {}))
    check_example_secrets(regions, env_secrets)
    check_systemd(regions)
    for p in ["gateway", "region-worker"]:
        text = (ROOT / "deploy" / "docker" / f"{p}.Dockerfile").read_text()
        check(f"cargo build --release --locked -p {p}" in text, f"{p}.Dockerfile: locked release build")
        check(re.search(r"^USER (?!0|root)", text, re.M) is not None, f"{p}.Dockerfile: non-root USER")
    if problems:
        for p in problems:
            print(f"deploy/check.py: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"deploy/check.py: {len(objects)} Kubernetes objects agree with regions.toml ({', '.join(regions)})")


if __name__ == "__main__":
    main()
