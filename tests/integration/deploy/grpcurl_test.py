#!/usr/bin/env python3
"""grpcurl (the real one, built by `make tools`) drives the real services through server
reflection, exactly as the README's "Deploy on Kubernetes" section tells users to:
`list`, `describe`, the health `Check` of every service, `StartExperiment` with the README's
JSON (read from README.md, only the target URL pointed at this test's simulator), and
`WatchExperiment` to the end; then the result files are on the controller's results directory.

The services run from the build (MSTPERF_BIN_DIR) on loopback, port 0, as
mstperf::testing::ServiceProcess starts them: --ready_file tells the ports.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from deploy_lib import (BIN_DIR, GRPCURL, HEALTH_PROTO_ARGS, README_TARGET, grpcurl,  # noqa: E402
                        readme_start_experiment_json, run_experiment_to_end, snake)


class Service:
    """A service binary on port 0 (what ServiceProcess does in C++)."""

    def __init__(self, name, args, tmp):
        self.name = name
        self.ready = os.path.join(tmp, f"{name}.ready.json")
        self.log_path = os.path.join(tmp, f"{name}.log")
        binary = os.path.join(BIN_DIR, f"mstperf-{name}")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([binary, "--host=127.0.0.1", f"--ready_file={self.ready}", *args],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with open(self.ready) as f:
                    self.ports = json.load(f)
                return
            except (OSError, ValueError):
                time.sleep(0.05)
        raise AssertionError(f"{name} wrote no ready file in 30 s:\n{self.log()}")

    def log(self):
        with open(self.log_path) as f:
            return f.read()[-4000:]

    def address(self):
        return f"127.0.0.1:{self.ports['grpc_port']}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class GrpcurlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [b for b in ("simulator", "loadgen", "evaluator", "controller")
                   if not os.access(os.path.join(BIN_DIR, f"mstperf-{b}"), os.X_OK)]
        if missing:
            raise unittest.SkipTest(f"not built yet: {missing} in {BIN_DIR}")
        if not os.access(GRPCURL, os.X_OK):
            raise AssertionError(f"{GRPCURL} missing: run `make tools`")
        cls.tmp = tempfile.mkdtemp(prefix="mstperf-grpcurl-")
        cls.results = os.path.join(cls.tmp, "results")
        os.makedirs(cls.results)
        cls.services = []
        try:
            # The simulator as the chart runs it (default engine), so the README's search fits it.
            cls.simulator = cls.start("simulator", "--port=0")
            cls.loadgen = cls.start("loadgen", "--port=0", "--metrics_port=0")
            cls.evaluator = cls.start("evaluator", "--port=0", "--metrics_port=0")
            cls.controller = cls.start(
                "controller", "--port=0", "--metrics_port=0", f"--results_dir={cls.results}",
                f"--loadgen={cls.loadgen.address()}", f"--evaluator={cls.evaluator.address()}")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start(cls, name, *args):
        service = Service(name, args, cls.tmp)
        cls.services.append(service)
        return service

    @classmethod
    def tearDownClass(cls):
        for s in reversed(getattr(cls, "services", [])):
            s.stop()

    def logs(self):
        return "\n".join(f"--- {s.name}:\n{s.log()}" for s in self.services)

    def test_list_shows_the_api_health_and_reflection(self):
        p = grpcurl(self.controller.address(), "list")
        self.assertEqual(p.returncode, 0, p.stderr)
        services = p.stdout.split()
        for name in ("mstperf.v1.SearchController", "grpc.health.v1.Health"):
            self.assertIn(name, services)
        self.assertTrue(any(s.startswith("grpc.reflection.") for s in services), services)
        for service, name in ((self.loadgen, "mstperf.v1.LoadGenerator"), (self.evaluator, "mstperf.v1.Evaluator")):
            p = grpcurl(service.address(), "list")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(name, p.stdout.split())

    def test_describe_shows_the_methods_and_messages(self):
        p = grpcurl(self.controller.address(), "describe", "mstperf.v1.SearchController")
        self.assertEqual(p.returncode, 0, p.stderr)
        for rpc in ("StartExperiment", "GetExperiment", "ListExperiments", "WatchExperiment", "CancelExperiment"):
            self.assertIn(f"rpc {rpc} (", p.stdout)
        self.assertIn("returns ( stream .mstperf.v1.ExperimentEvent )", p.stdout)
        p = grpcurl(self.controller.address(), "describe", "mstperf.v1.ExperimentSpec")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("repeated .mstperf.v1.TokenPair tokens = 3;", p.stdout)

    def test_health_check_through_reflection(self):
        # The README's command, against the controller.
        p = grpcurl(self.controller.address(), "grpc.health.v1.Health/Check", data='{"service": ""}')
        if 'does not expose service "grpc.health.v1.Health"' in p.stderr:
            # Reflection lists the health service but cannot serve its descriptor unless the
            # binary links health.proto's generated code (services/common: see docs/deploy.md).
            self.skipTest("reflection has no grpc/health/v1/health.proto descriptor")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout), {"status": "SERVING"})

    def test_health_check_of_every_service(self):
        # With grpc-proto's health.proto, so this checks the health service itself, whether or
        # not a binary's reflection carries the health descriptor (see docs/deploy.md).
        for service in (self.controller, self.loadgen, self.evaluator):
            with self.subTest(service=service.name):
                p = grpcurl(*HEALTH_PROTO_ARGS, service.address(), "grpc.health.v1.Health/Check",
                            data='{"service": ""}')
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertEqual(json.loads(p.stdout), {"status": "SERVING"})

    def test_start_rejects_a_bad_spec_naming_the_field(self):
        body = json.loads(readme_start_experiment_json())
        body["spec"]["duration_s"] = -1
        body["experiment_id"] = "bad-spec"
        p = grpcurl(self.controller.address(), "mstperf.v1.SearchController/StartExperiment", data=json.dumps(body))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("InvalidArgument", p.stderr)
        self.assertIn("spec.duration_s", p.stderr)

    def test_readme_experiment_runs_to_the_end_and_writes_its_files(self):
        body = readme_start_experiment_json()
        self.assertIn(README_TARGET, body)
        body = body.replace(README_TARGET, f"http://127.0.0.1:{self.simulator.ports['http_port']}")
        run_experiment_to_end(self, self.controller.address(), body, self.results, self.logs, max_time=240)

        p = grpcurl(self.controller.address(), "mstperf.v1.SearchController/GetExperiment",
                    data=json.dumps({"experiment_id": json.loads(body)["experiment_id"]}))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(snake(json.loads(p.stdout))["state"], "EXPERIMENT_STATE_SUCCEEDED")


if __name__ == "__main__":
    unittest.main(verbosity=2)
