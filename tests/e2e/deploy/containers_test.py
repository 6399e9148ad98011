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
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "integration", "deploy"))
from deploy_lib import GRPCURL, README_TARGET, readme_start_experiment_json, run_experiment_to_end, wait_serving  # noqa: E402
from podman_lib import build_images, free_port, sh  # noqa: E402

PREFIX = f"mstperf-e2e-{os.getpid()}"


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
            wait_serving(cls.address, 60, cls.logs)
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
        experiment = run_experiment_to_end(self, self.address, body, self.results, self.logs)
        self.assertEqual(experiment["results_dir"], "/results")

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
