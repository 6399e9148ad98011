#!/usr/bin/env python3
"""The four images, end to end, with podman (no Docker engine, no Kubernetes):

1. `scripts/images.sh` builds (or reuses) mstperf-{simulator,loadgen,evaluator,controller};
2. they run on one podman network, as the chart runs them: user 10001, read-only root
   filesystem with a tmpfs /tmp, every capability dropped, no privilege escalation; two loadgen
   containers share the load; the controller's results directory is a host folder mounted at
   /results;
3. grpcurl (through reflection, on the controller's port published on 127.0.0.1) checks health,
   starts the README's experiment against the simulator container and watches it to the end;
4. the result files are found in the host folder;
5. `podman stop` (SIGTERM) ends every service by itself, with exit code 0.

Containers run under the private configuration of scripts/lib/containers.sh (vfs, runc,
cgroupfs, ulimits nofile 1024 / nproc 4096).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "integration", "deploy"))
from grpcurl_test import HEALTH_PROTO_ARGS, README_TARGET, check_pair_result, decode_stream, readme_start_experiment_json, snake  # noqa: E402

ROOT = os.environ.get("MSTPERF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GRPCURL = os.path.join(ROOT, ".tools", "bin", "grpcurl")
PREFIX = f"mstperf-e2e-{os.getpid()}"


def containers_env():
    """The environment scripts/lib/containers.sh sets up (it also writes the config files)."""
    out = subprocess.run(
        ["bash", "-c", f"source '{ROOT}/scripts/lib/containers.sh' && containers_setup >&2 && env -0"],
        capture_output=True, check=True)
    return dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)


ENV = containers_env()


def sh(*args, check=True, timeout=300):
    p = subprocess.run(list(args), capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def version():
    for line in open(os.path.join(ROOT, "CMakeLists.txt")):
        if line.startswith("project(mstperf VERSION "):
            return line.split()[2]
    raise AssertionError("no project VERSION in CMakeLists.txt")


def build_images():
    """Builds (or, when every layer is cached, just checks) the four images; returns their tag.
    MSTPERF_E2E_PREBUILT=1 uses the images `make images` made instead (e.g. right after it)."""
    if os.environ.get("MSTPERF_E2E_PREBUILT") == "1":
        for image in ("simulator", "loadgen", "evaluator", "controller"):
            sh("podman", "image", "exists", f"localhost/mstperf-{image}:{version()}")
        return version()
    start = time.monotonic()
    p = subprocess.run([os.path.join(ROOT, "scripts", "images.sh")], env=ENV, text=True,
                       capture_output=True, timeout=3600)
    if p.returncode != 0:
        raise AssertionError(f"scripts/images.sh failed:\n{p.stderr[-6000:]}")
    print(f"images ready in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return version()


class ContainersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tag = build_images()
        cls.results = tempfile.mkdtemp(prefix="mstperf-e2e-results-")
        os.chmod(cls.results, 0o777)  # written by uid 10001 inside the container
        cls.port = free_port()
        cls.network = f"{PREFIX}-net"
        cls.containers = []
        try:
            sh("podman", "network", "create", cls.network)
            cls.run_container("simulator", ["--max_num_seqs=4"])
            cls.run_container("evaluator")
            cls.run_container("loadgen", name="loadgen-1")
            cls.run_container("loadgen", name="loadgen-2")
            cls.run_container(
                "controller",
                extra=["-p", f"127.0.0.1:{cls.port}:50051", "-v", f"{cls.results}:/results:Z",
                       "-e", f"MSTPERF_LOADGEN={PREFIX}-loadgen-1:50052,{PREFIX}-loadgen-2:50052",
                       "-e", f"MSTPERF_EVALUATOR={PREFIX}-evaluator:50053"])
            cls.address = f"127.0.0.1:{cls.port}"
            cls.wait_serving()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def run_container(cls, image, args=(), name=None, extra=()):
        name = f"{PREFIX}-{name or image}"
        sh("podman", "run", "-d", "--name", name, "--network", cls.network,
           "--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
           *extra, f"localhost/mstperf-{image}:{cls.tag}", *args)
        cls.containers.append(name)

    @classmethod
    def wait_serving(cls):
        deadline = time.monotonic() + 60
        last = ""
        while time.monotonic() < deadline:
            p = subprocess.run([GRPCURL, "-plaintext", "-max-time", "3", *HEALTH_PROTO_ARGS, "-d", '{"service": ""}',
                                cls.address, "grpc.health.v1.Health/Check"], capture_output=True, text=True)
            if p.returncode == 0 and "SERVING" in p.stdout:
                return
            last = p.stderr
            time.sleep(0.5)
        raise AssertionError(f"the controller container never served on {cls.address}: {last}\n{cls.logs()}")

    @classmethod
    def logs(cls):
        out = []
        for c in cls.containers:
            p = sh("podman", "logs", c, check=False)
            out.append(f"--- {c}:\n{(p.stdout + p.stderr)[-3000:]}")
        return "\n".join(out)

    @classmethod
    def tearDownClass(cls):
        for c in getattr(cls, "containers", []):
            sh("podman", "rm", "-f", "-t", "2", c, check=False)
        if getattr(cls, "network", None):
            sh("podman", "network", "rm", "-f", cls.network, check=False)

    def grpcurl(self, method, data, max_time=60):
        return subprocess.run([GRPCURL, "-plaintext", "-max-time", str(max_time), "-d", "@", self.address, method],
                              input=data, capture_output=True, text=True, timeout=max_time + 30)

    def test_1_images_run_as_non_root_with_only_runtime_libraries(self):
        for image in ("simulator", "loadgen", "evaluator", "controller"):
            with self.subTest(image=image):
                inspect = json.loads(sh("podman", "image", "inspect", f"localhost/mstperf-{image}:{self.tag}").stdout)[0]
                self.assertEqual(inspect["Config"]["User"], "10001:10001")
                self.assertEqual(inspect["Config"]["Entrypoint"][0], f"/usr/local/bin/mstperf-{image}")
                p = sh("podman", "run", "--rm", "--entrypoint", "/bin/sh", f"localhost/mstperf-{image}:{self.tag}",
                       "-c", "id -u; ldd /usr/local/bin/*; command -v g++ cmake || true")
                lines = p.stdout.splitlines()
                self.assertEqual(lines[0], "10001")
                self.assertNotIn("not found", p.stdout)
                self.assertFalse([l for l in lines if l.endswith(("/g++", "/cmake"))], "build tools in a runtime image")
        p = sh("podman", "run", "--rm", "--entrypoint", "/usr/local/bin/mstperfctl",
               f"localhost/mstperf-controller:{self.tag}", "--helpshort", check=False)
        self.assertIn("controller", p.stdout + p.stderr)

    def test_2_reflection_and_health_through_the_published_port(self):
        p = subprocess.run([GRPCURL, "-plaintext", self.address, "list"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("mstperf.v1.SearchController", p.stdout.split())

    def test_3_readme_experiment_runs_in_containers_and_writes_to_the_volume(self):
        body = readme_start_experiment_json().replace(README_TARGET, f"http://{PREFIX}-simulator:8000")
        experiment_id = json.loads(body)["experiment_id"]
        p = self.grpcurl("mstperf.v1.SearchController/StartExperiment", body)
        self.assertEqual(p.returncode, 0, p.stderr + self.logs())
        p = self.grpcurl("mstperf.v1.SearchController/WatchExperiment",
                         json.dumps({"experiment_id": experiment_id}), max_time=600)
        self.assertEqual(p.returncode, 0, p.stderr + self.logs())
        events = [snake(e) for e in decode_stream(p.stdout)]
        self.assertEqual(events[-1]["kind"], "KIND_EXPERIMENT_FINISHED", self.logs())
        experiment = events[-1]["experiment"]
        self.assertEqual(experiment["state"], "EXPERIMENT_STATE_SUCCEEDED", experiment)
        self.assertEqual(experiment["results_dir"], "/results")
        pair = experiment["pairs"][0]
        check_pair_result(self, pair)
        # Both loadgen containers took part: records of replica 0 and 1 in an output.csv would
        # need the CSV layout; the iteration totals count every request sent by either.
        for iteration in pair["iterations"]:
            folder = os.path.join(self.results, iteration["directory"])
            for name in ("output.csv", "results.json", "results.csv"):
                self.assertTrue(os.path.isfile(os.path.join(folder, name)), f"{folder}/{name} missing")
        self.assertTrue(os.path.isfile(os.path.join(self.results, "experiments", f"{experiment_id}.json")))

    def test_4_sigterm_stops_every_service_cleanly(self):
        for c in reversed(self.containers):
            with self.subTest(container=c):
                start = time.monotonic()
                sh("podman", "stop", "-t", "30", c)
                state = json.loads(sh("podman", "inspect", c).stdout)[0]["State"]
                self.assertEqual(state["ExitCode"], 0, self.logs())
                self.assertLess(time.monotonic() - start, 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
