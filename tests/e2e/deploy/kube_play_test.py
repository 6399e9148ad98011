#!/usr/bin/env python3
"""The Helm chart, rendered and run: `helm template` with the chart's defaults plus the simulator,
then `podman kube play` of the rendered Deployments and PersistentVolumeClaim on one podman
network, with the images `scripts/images.sh` builds.

podman plays Deployments (one pod per replica, named <deployment>-pod-<i>, with the pod and
container security contexts, env, args, volumes) and claims (as podman volumes), but it ignores
Services. What kube-dns does for them is done here with network aliases: every pod a Service
selects gets the Service's name as an alias, so the headless Service's name resolves to every
loadgen pod, exactly as in a cluster. The only edit to the rendered objects is a hostPort on
127.0.0.1 for the controller's gRPC port (what `kubectl port-forward` gives a user).

Then the README's experiment, as the README shows it (release "mstperf", so the target
http://mstperf-simulator:8000 is the chart's simulator Service), is started with grpcurl and
watched to the end; the controller reaches the loadgens through the default
dns:///mstperf-loadgen-headless:50052; the result files are in the claim's volume; and
`podman pod stop` (SIGTERM) ends every container with exit code 0. The `helm test` pod's
container runs as rendered and passes.
"""
import json
import os
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "integration", "deploy"))
from deploy_lib import ROOT, readme_start_experiment_json, run_experiment_to_end, wait_serving  # noqa: E402
from podman_lib import ENV, build_images, free_port, sh  # noqa: E402

HELM = os.path.join(ROOT, ".tools", "bin", "helm")
RELEASE = "mstperf"  # fullname "mstperf": the README's names
PLAYED_KINDS = ("Deployment", "PersistentVolumeClaim")


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class KubePlayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tag = build_images()
        p = subprocess.run([HELM, "template", RELEASE, os.path.join(ROOT, "charts", "mstperf"),
                            "--set", "simulator.enabled=true",
                            "--set", "simulator.extraArgs={--max_num_seqs=4}",
                            "--set", "dashboards.enabled=false"],
                           capture_output=True, text=True, check=True)
        objects = [o for o in yaml.safe_load_all(p.stdout) if o]
        cls.services = [o for o in objects if o["kind"] == "Service"]
        cls.deployments = [o for o in objects if o["kind"] == "Deployment"]
        cls.test_pod = next(o for o in objects if o["kind"] == "Pod"
                            and o["metadata"]["annotations"].get("helm.sh/hook") == "test")
        # podman publishes every containerPort on the host (hostPort = containerPort unless one
        # is given), where the default ports may be taken: each gets a free loopback port, and
        # the replicas of a Deployment (one template, so one hostPort) publish none (their gRPC
        # probes name port numbers, which podman does not run anyway).
        for d in cls.deployments:
            for c in d["spec"]["template"]["spec"]["containers"]:
                if d["spec"]["replicas"] > 1:
                    c.pop("ports", None)
                    continue
                for port in c.get("ports", []):
                    port["hostIP"], port["hostPort"] = "127.0.0.1", free_port()
                    if d["metadata"]["name"] == "mstperf-controller" and port["name"] == "grpc":
                        cls.port = port["hostPort"]
        played = [o for o in objects if o["kind"] in PLAYED_KINDS]
        cls.claim = next(o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim")
        cls.manifest = os.path.join(ENV["TMPDIR"], f"kube-play-{os.getpid()}.yaml")
        with open(cls.manifest, "w") as f:
            yaml.safe_dump_all(played, f)
        cls.network = f"mstperf-kube-{os.getpid()}"
        sh("podman", "volume", "rm", "-f", cls.claim, check=False)
        sh("podman", "network", "create", cls.network)
        try:
            sh("podman", "kube", "play", "--network", cls.network, cls.manifest)
            cls.add_service_aliases()
            wait_serving(f"127.0.0.1:{cls.port}", 90, cls.logs)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def pods_of(cls, service):
        pods = []
        for d in cls.deployments:
            if selects(service["spec"].get("selector"), d["spec"]["template"]["metadata"]["labels"]):
                pods += [f"{d['metadata']['name']}-pod-{i}" for i in range(d["spec"]["replicas"])]
        return pods

    @classmethod
    def add_service_aliases(cls):
        """Each Service's name becomes a DNS alias of the pods it selects (kube-dns' job)."""
        aliases = {}
        for service in cls.services:
            for pod in cls.pods_of(service):
                aliases.setdefault(pod, []).append(service["metadata"]["name"])
        for pod, names in aliases.items():
            infra = sh("podman", "pod", "inspect", pod, "--format", "{{.InfraContainerID}}").stdout.strip()
            sh("podman", "network", "disconnect", cls.network, infra)
            sh("podman", "network", "connect", *[a for n in names for a in ("--alias", n)], cls.network, infra)

    @classmethod
    def containers(cls):
        out = sh("podman", "ps", "-a", "--format", "{{.Names}}").stdout.split()
        return [c for c in out if c.startswith(RELEASE + "-") and not c.endswith("-infra")]

    @classmethod
    def logs(cls):
        return "\n".join(f"--- {c}:\n{sh('podman', 'logs', c, check=False).stderr[-2500:]}"
                         for c in cls.containers())

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "manifest", None):
            sh("podman", "kube", "down", cls.manifest, check=False)
        sh("podman", "volume", "rm", "-f", getattr(cls, "claim", "none"), check=False)
        if getattr(cls, "network", None):
            sh("podman", "network", "rm", "-f", cls.network, check=False)

    def test_1_pods_run_as_the_chart_says(self):
        names = self.containers()
        for pod in ("mstperf-controller-pod-0", "mstperf-evaluator-pod-0", "mstperf-loadgen-pod-0",
                    "mstperf-loadgen-pod-1", "mstperf-simulator-pod-0"):
            self.assertTrue(any(n.startswith(pod) for n in names), f"{pod} not in {names}")
        for c in names:
            with self.subTest(container=c):
                state = json.loads(sh("podman", "inspect", c).stdout)[0]
                self.assertEqual(state["State"]["Status"], "running", self.logs())
                # The loadgen runs as uid 0 with SYS_NICE as its one capability (the chart's
                # loadgen.realtimeEventLoop, docs/deploy.md); everything else as 10001.
                uid = "0" if "-loadgen-" in c else "10001"
                self.assertEqual(state["Config"]["User"].split(":")[0], uid)
                self.assertTrue(state["HostConfig"]["ReadonlyRootfs"])

    def test_2_helm_test_pod_passes(self):
        """The `helm test` hook's container, run as rendered on the same network."""
        c = self.test_pod["spec"]["containers"][0]
        p = sh("podman", "run", "--rm", "--network", self.network, "--read-only", "--user", "10001",
               "--entrypoint", c["command"][0], c["image"], *c["command"][1:], *c["args"], check=False)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr + self.logs())

    def test_3_readme_experiment_through_the_chart_wiring(self):
        body = readme_start_experiment_json()  # unchanged: its target is the chart's simulator Service
        volume = json.loads(sh("podman", "volume", "inspect", self.claim).stdout)[0]["Mountpoint"]
        run_experiment_to_end(self, f"127.0.0.1:{self.port}", body, volume, self.logs)

    def test_4_pods_stop_cleanly_on_sigterm(self):
        # `podman pod stop` sends SIGTERM (kube down would remove the pods at once, with SIGKILL).
        names = self.containers()
        pods = sorted({n.rsplit("-", 1)[0] for n in names})
        sh("podman", "pod", "stop", "-t", "30", *pods)
        for c in names:
            with self.subTest(container=c):
                state = json.loads(sh("podman", "inspect", c).stdout)[0]["State"]
                self.assertEqual(state["ExitCode"], 0, f"{c}: {state}")

if __name__ == "__main__":
    unittest.main(verbosity=2)
