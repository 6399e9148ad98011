#!/usr/bin/env python3
"""The Helm chart, checked with the real tools that `make tools` builds (.tools/bin):

- `helm lint --strict` and `helm template` with the default values and every ci/*-values.yaml;
- every rendered object decoded strictly into the Kubernetes API types by kube-validate (an
  unknown, misspelt or duplicated field fails), with the chart's pod policy (non-root, read-only
  root filesystem, probes, resources);
- what the chart promises, read from the rendered objects: the controller finds every loadgen
  replica through the headless Service, native gRPC probes on the gRPC ports, a PVC or an
  existing claim for the results, ServiceMonitors and the dashboards ConfigMap behind switches;
- values.schema.json rejects bad values (loadgen.replicas: -1, unknown keys, ...);
- kube-validate itself fails on broken manifests (so a pass above means something);
- the packaged chart carries grafana/dashboards/*.json byte for byte (dashboards/ is a symlink);
- NOTES.txt renders grpcurl commands for this release.
"""
import glob
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import yaml

ROOT = os.environ.get("MSTPERF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOOLS = os.path.join(ROOT, ".tools", "bin")
HELM = os.path.join(TOOLS, "helm")
KUBE_VALIDATE = os.path.join(TOOLS, "kube-validate")
CHART = os.path.join(ROOT, "charts", "mstperf")
RELEASE = "rel"
FULLNAME = "rel-mstperf"


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)


def chart_has_dashboards():
    return bool(glob.glob(os.path.join(CHART, "dashboards", "*.json")))


def helm_template(*args):
    """Renders the chart; returns (stdout, list of objects). Fails the caller on error."""
    if not chart_has_dashboards():
        # Until grafana/dashboards/ (which charts/mstperf/dashboards links to) is there, the
        # dashboards ConfigMap cannot render; DashboardsTest says so as a skip.
        args = (*args, "--set", "dashboards.enabled=false")
    p = run([HELM, "template", RELEASE, CHART, *args])
    if p.returncode != 0:
        raise AssertionError(f"helm template {' '.join(args)} failed:\n{p.stderr}")
    return p.stdout, [d for d in yaml.safe_load_all(p.stdout) if d]


def find(objects, kind, name):
    for o in objects:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError(f"no {kind}/{name} in {[(o['kind'], o['metadata']['name']) for o in objects]}")


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def ci_values():
    return sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))


class ToolsTest(unittest.TestCase):
    def test_tools_are_built(self):
        for tool in (HELM, KUBE_VALIDATE):
            self.assertTrue(os.access(tool, os.X_OK), f"{tool} missing: run `make tools`")


class LintAndValidateTest(unittest.TestCase):
    def test_lint_strict_with_every_values_file(self):
        for values in [None, *ci_values()]:
            with self.subTest(values=values):
                args = [HELM, "lint", "--strict", CHART] + (["-f", values] if values else [])
                p = run(args)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn("0 chart(s) failed", p.stdout)

    def test_every_rendered_object_is_valid(self):
        self.assertGreaterEqual(len(ci_values()), 4)
        for values in [None, *ci_values()]:
            with self.subTest(values=values):
                text, objects = helm_template(*(["-f", values] if values else []))
                self.assertGreaterEqual(len(objects), 6)
                p = run([KUBE_VALIDATE, "-policy", "-external", "mstperf-results"], stdin=text)
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(f"{len(objects)} objects valid", p.stdout)

    def test_kube_validate_rejects_broken_manifests(self):
        text, _ = helm_template()
        broken = {
            "unknown field": text.replace("  strategy:\n", "  strategi:\n", 1),
            "wrong case": text.replace("      containers:\n", "      Containers:\n", 1),
            "duplicate key": text.replace("  replicas: 2\n", "  replicas: 2\n  replicas: 3\n", 1),
            "bad quantity": text.replace('storage: "10Gi"', 'storage: "10 GB"', 1),
            "unknown port name": text.replace("targetPort: grpc", "targetPort: grcp", 1),
            "probe on an undeclared port": text.replace(
                "grpc:\n              port: 50052\n", "grpc:\n              port: 50099\n", 1),
            "unknown kind": text + "\n---\napiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n",
        }
        for what, manifest in broken.items():
            with self.subTest(what=what):
                self.assertNotEqual(manifest, text, "the substitution did not apply")
                p = run([KUBE_VALIDATE], stdin=manifest)
                self.assertEqual(p.returncode, 1, f"accepted: {p.stdout}")
        writable = text.replace("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
        self.assertEqual(run([KUBE_VALIDATE], stdin=writable).returncode, 0)
        p = run([KUBE_VALIDATE, "-policy"], stdin=writable)
        self.assertEqual(p.returncode, 1)
        self.assertIn("readOnlyRootFilesystem", p.stderr)
        # Root is allowed only with SYS_NICE as the one capability (the loadgen's real-time loop).
        self.assertIn("- SYS_NICE", text)
        for cap in ("SYS_ADMIN", "NET_RAW"):
            with self.subTest(capability=cap):
                p = run([KUBE_VALIDATE, "-policy"], stdin=text.replace("- SYS_NICE", f"- {cap}"))
                self.assertEqual(p.returncode, 1)
                self.assertIn(f"capability {cap} added", p.stderr)
                self.assertIn("runAsNonRoot", p.stderr)


class SchemaTest(unittest.TestCase):
    def test_schema_rejects_bad_values(self):
        bad = [
            "loadgen.replicas=-1",
            "loadgen.replicas=0",
            "evaluator.replicas=-3",
            "controller.port=0",
            "loadgen.port=70000",
            "image.pullPolicy=Sometimes",
            "loadgen.replicaz=2",
            "controller.persistence.size=lots",
            "serviceMonitor.interval=often",
            "simulator.service.type=Magic",
        ]
        for setting in bad:
            with self.subTest(setting=setting):
                p = run([HELM, "template", RELEASE, CHART, "--set", setting])
                self.assertNotEqual(p.returncode, 0, f"{setting} accepted")
                self.assertIn("don't meet the specifications of the schema", p.stderr)

    def test_schema_accepts_good_values(self):
        helm_template("--set", "loadgen.replicas=8", "--set", "controller.persistence.size=1Ti")

    def test_values_yaml_comments_every_key(self):
        # Every key of values.yaml has a "##" comment on a line above it (directly, or above its
        # enclosing block's first key for list/map items of security contexts).
        lines = open(os.path.join(CHART, "values.yaml")).read().splitlines()
        schema = json.load(open(os.path.join(CHART, "values.schema.json")))
        values = yaml.safe_load("\n".join(lines))

        def walk(node, schema_node, path):
            self.assertIn("properties", schema_node, f"{path}: no schema")
            for key, value in node.items():
                self.assertIn(key, schema_node["properties"], f"{path}.{key} not in the schema")
                sub = schema_node["properties"][key]
                if isinstance(value, dict) and value and "properties" in sub:
                    walk(value, sub, f"{path}.{key}")

        walk(values, schema, "")
        for i, line in enumerate(lines):
            if line and not line.startswith((" ", "#")):  # a top-level key
                self.assertTrue(lines[i - 1].startswith("##"), f"values.yaml:{i + 1} {line!r} has no comment")


class RenderedChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        _, cls.objects = helm_template()

    def deployment(self, component):
        return find(self.objects, "Deployment", f"{FULLNAME}-{component}")

    def test_controller_uses_every_loadgen_replica_through_the_headless_service(self):
        headless = find(self.objects, "Service", f"{FULLNAME}-loadgen-headless")
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertEqual(headless["spec"]["selector"],
                         self.deployment("loadgen")["spec"]["selector"]["matchLabels"])
        self.assertEqual(self.deployment("loadgen")["spec"]["replicas"], 2)
        env = env_of(self.deployment("controller")["spec"]["template"]["spec"]["containers"][0])
        self.assertEqual(env["MSTPERF_LOADGEN"], f"dns:///{FULLNAME}-loadgen-headless:50052")
        self.assertEqual(env["MSTPERF_EVALUATOR"], f"{FULLNAME}-evaluator:50053")
        self.assertEqual(env["MSTPERF_RESULTS_DIR"], "/results")

    def test_grpc_services_have_native_grpc_probes_on_their_ports(self):
        for component, port in (("controller", 50051), ("loadgen", 50052), ("evaluator", 50053)):
            with self.subTest(component=component):
                c = self.deployment(component)["spec"]["template"]["spec"]["containers"][0]
                self.assertEqual(c["livenessProbe"]["grpc"]["port"], port)
                self.assertEqual(c["readinessProbe"]["grpc"]["port"], port)
                self.assertEqual(env_of(c)["MSTPERF_PORT"], str(port))
                self.assertIn("requests", c["resources"])
                self.assertTrue(c["securityContext"]["readOnlyRootFilesystem"])
                pod = self.deployment(component)["spec"]["template"]["spec"]
                self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                self.assertEqual(pod["securityContext"]["runAsUser"], 10001)
                self.assertEqual(pod["serviceAccountName"], FULLNAME)
                self.assertFalse(pod["automountServiceAccountToken"])

    def test_loadgen_may_run_its_event_loop_real_time_and_can_be_told_not_to(self):
        c = self.deployment("loadgen")["spec"]["template"]["spec"]["containers"][0]
        sc = c["securityContext"]
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"], "add": ["SYS_NICE"]})
        self.assertEqual(sc["runAsUser"], 0)
        self.assertFalse(sc["runAsNonRoot"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(env_of(c)["MSTPERF_REALTIME_EVENT_LOOP"], "true")
        # The other components keep the shared, unprivileged context.
        ev = self.deployment("evaluator")["spec"]["template"]["spec"]["containers"][0]
        self.assertNotIn("add", ev["securityContext"]["capabilities"])
        self.assertNotIn("runAsUser", ev["securityContext"])
        _, objects = helm_template("--set", "loadgen.realtimeEventLoop=false")
        off = find(objects, "Deployment", f"{FULLNAME}-loadgen")
        c = off["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(c["securityContext"]["capabilities"], {"drop": ["ALL"]})
        self.assertNotIn("runAsUser", c["securityContext"])
        self.assertEqual(env_of(c)["MSTPERF_REALTIME_EVENT_LOOP"], "false")

    def test_results_on_a_pvc_or_an_existing_claim(self):
        pvc = find(self.objects, "PersistentVolumeClaim", f"{FULLNAME}-controller-results")
        volumes = self.deployment("controller")["spec"]["template"]["spec"]["volumes"]
        self.assertIn({"name": "results", "persistentVolumeClaim": {"claimName": pvc["metadata"]["name"]}},
                      volumes)
        self.assertEqual(self.deployment("controller")["spec"]["strategy"]["type"], "Recreate")
        _, objects = helm_template("--set", "controller.persistence.existingClaim=mine")
        self.assertFalse([o for o in objects if o["kind"] == "PersistentVolumeClaim"])
        volumes = find(objects, "Deployment", f"{FULLNAME}-controller")["spec"]["template"]["spec"]["volumes"]
        self.assertIn({"name": "results", "persistentVolumeClaim": {"claimName": "mine"}}, volumes)

    def test_optional_parts_are_off_by_default_and_render_when_switched_on(self):
        kinds = {o["kind"] for o in self.objects}
        self.assertNotIn("ServiceMonitor", kinds)
        self.assertNotIn("ConfigMap", kinds)
        self.assertFalse([o for o in self.objects if o["metadata"]["name"].endswith("-simulator")])
        _, objects = helm_template("--set", "simulator.enabled=true", "--set", "serviceMonitor.enabled=true",
                                   "--set", "serviceMonitor.labels.release=prometheus")
        monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
        self.assertEqual(sorted(m["metadata"]["name"] for m in monitors),
                         sorted(f"{FULLNAME}-{c}" for c in ("controller", "loadgen", "evaluator", "simulator")))
        for m in monitors:
            self.assertEqual(m["metadata"]["labels"]["release"], "prometheus")
        sim = find(objects, "Deployment", f"{FULLNAME}-simulator")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(sim["readinessProbe"]["httpGet"]["path"], "/health")

    def test_helm_test_pod_checks_the_controller(self):
        pod = find(self.objects, "Pod", f"{FULLNAME}-test-controller")
        self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
        c = pod["spec"]["containers"][0]
        self.assertIn(f"--controller={FULLNAME}-controller:50051", c["args"])


class DashboardsTest(unittest.TestCase):
    def grafana_dashboards(self):
        files = sorted(glob.glob(os.path.join(ROOT, "grafana", "dashboards", "*.json")))
        if not files:
            self.skipTest("grafana/dashboards/ has no dashboards yet")
        self.assertTrue(chart_has_dashboards(), "charts/mstperf/dashboards must link to grafana/dashboards")
        return files

    def test_configmap_holds_every_dashboard(self):
        files = self.grafana_dashboards()
        _, objects = helm_template("--set", "dashboards.enabled=true")
        cm = find(objects, "ConfigMap", f"{FULLNAME}-dashboards")
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        self.assertEqual(sorted(cm["data"]), [os.path.basename(f) for f in files])
        for f in files:
            self.assertEqual(json.loads(cm["data"][os.path.basename(f)]), json.load(open(f)))

    def test_packaged_chart_carries_the_dashboards_byte_for_byte(self):
        files = self.grafana_dashboards()
        with tempfile.TemporaryDirectory() as out:
            p = run([HELM, "package", CHART, "-d", out])
            self.assertEqual(p.returncode, 0, p.stderr)
            (tgz,) = glob.glob(os.path.join(out, "*.tgz"))
            with tarfile.open(tgz) as tar:
                for f in files:
                    member = tar.extractfile(f"mstperf/dashboards/{os.path.basename(f)}")
                    self.assertEqual(member.read(), open(f, "rb").read(), f)


class NotesTest(unittest.TestCase):
    def test_notes_render_grpcurl_commands_for_this_release(self):
        with tempfile.TemporaryDirectory() as tmp:
            chart = os.path.join(tmp, "mstperf")
            shutil.copytree(CHART, chart, symlinks=False, ignore=shutil.ignore_patterns("dashboards"))
            # `helm template` does not render NOTES.txt (and .Files cannot read templates/): a
            # copy outside templates/ is rendered with `tpl` into a YAML document.
            shutil.copy(os.path.join(chart, "templates", "NOTES.txt"), os.path.join(chart, "notes.txt"))
            with open(os.path.join(chart, "templates", "notes.yaml"), "w") as f:
                f.write('notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n')
            p = run([HELM, "template", RELEASE, chart, "--set", "simulator.enabled=true",
                     "--show-only", "templates/notes.yaml"])
            self.assertEqual(p.returncode, 0, p.stderr)
            notes = yaml.safe_load(p.stdout)["notes"]
        self.assertIn(f"port-forward svc/{FULLNAME}-controller 50051:50051", notes)
        self.assertIn("grpcurl -plaintext localhost:50051 list", notes)
        self.assertIn("grpc.health.v1.Health/Check", notes)
        self.assertIn("mstperf.v1.SearchController/WatchExperiment", notes)
        self.assertIn(f'"url": "http://{FULLNAME}-simulator:8000"', notes)
        # The StartExperiment body in the notes is valid JSON.
        body = notes.split("<<'JSON'\n", 1)[1].split("\nJSON\n", 1)[0]
        self.assertEqual(json.loads(body)["spec"]["tokens"][0]["input"]["min"], 128)


if __name__ == "__main__":
    unittest.main(verbosity=2)
