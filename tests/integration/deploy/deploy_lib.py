"""What the deployment tests share: the real grpcurl (`make tools`), the README's
StartExperiment example, decoding grpcurl's output, and running that experiment to the end
through a controller's published address with the checks every deployment must pass."""
import json
import os
import re
import subprocess
import time

ROOT = os.environ.get("MSTPERF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN_DIR = os.environ.get("MSTPERF_BIN_DIR") or os.path.join(ROOT, "build", "bin")
GRPCURL = os.path.join(ROOT, ".tools", "bin", "grpcurl")
README = os.path.join(ROOT, "README.md")
HEALTH_PROTO_DIR = "/usr/share/grpc-proto"  # Debian's grpc-proto (scripts/deps.sh)
# grpcurl arguments for grpc.health.v1.Health without reflection (see docs/deploy.md).
HEALTH_PROTO_ARGS = ["-import-path", HEALTH_PROTO_DIR, "-proto", "grpc/health/v1/health.proto"]
# The README's example reaches the chart's simulator Service (release "mstperf"); the test's
# simulator listens on a loopback port of its own.
README_TARGET = "http://mstperf-simulator:8000"


def readme_start_experiment_json():
    """The JSON body of the README's StartExperiment example (the ```json block after the
    <!-- deploy:start-experiment --> marker)."""
    text = open(README).read()
    m = re.search(r"<!-- deploy:start-experiment -->\s*```json\n(.*?)```", text, re.S)
    if not m:
        raise AssertionError("README.md has no <!-- deploy:start-experiment --> ```json block")
    return m.group(1)


def decode_stream(text):
    """grpcurl prints one JSON document per message; returns them all."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    text = text.strip()
    while i < len(text):
        obj, end = decoder.raw_decode(text, i)
        out.append(obj)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def snake(obj):
    """grpcurl prints lowerCamelCase field names; the API and the README use the proto names."""
    if isinstance(obj, dict):
        return {re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), k): snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [snake(v) for v in obj]
    return obj


def check_pair_result(test, pair):
    """The search ended on one of its own terms with judged iterations. Whether it converged
    depends on the machine: on a loaded one the evaluator may find the client (send lag) was the
    limit, retry, and end "inconclusive"; when it converged, the MST is a rate it measured."""
    test.assertTrue(pair.get("finished"), pair)
    test.assertGreaterEqual(len(pair["iterations"]), 1, pair)
    for iteration in pair["iterations"]:
        test.assertTrue(iteration["verdict"]["state"].startswith("VERDICT_STATE_"), iteration)
        test.assertTrue(iteration["verdict"].get("reasons"), iteration)
    reason = pair.get("termination_reason", "")
    test.assertIn(reason.split(":")[0], ("converged", "max_iterations", "no_sustainable_rate", "inconclusive"), pair)
    if reason in ("converged", "max_iterations"):
        measured = {float(i["req_min"]) for i in pair["iterations"]}
        test.assertIn(float(pair.get("mst_req_min", 0)), measured, pair)


def grpcurl(*args, data=None, max_time=60):
    cmd = [GRPCURL, "-plaintext", "-max-time", str(max_time)]
    if data is not None:
        cmd += ["-d", "@"]
    return subprocess.run([*cmd, *args], input=data, capture_output=True, text=True,
                          timeout=max_time + 30)


def wait_serving(address, timeout_s, logs):
    """Polls the health service at `address` until it says SERVING; `logs()` goes into the error."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        p = grpcurl(*HEALTH_PROTO_ARGS, address, "grpc.health.v1.Health/Check", data='{"service": ""}', max_time=3)
        if p.returncode == 0 and "SERVING" in p.stdout:
            return
        last = p.stderr
        time.sleep(0.5)
    raise AssertionError(f"nothing served health on {address} in {timeout_s} s: {last}\n{logs()}")


def run_experiment_to_end(test, address, body, results_dir, logs, max_time=600):
    """Starts the experiment `body` (StartExperiment JSON) with grpcurl, watches it to the end and
    checks what every deployment must give: a started id, a snapshot first, iteration and pair
    events, success, a well-formed pair result, and each iteration's original files plus the
    experiment's state file in `results_dir` (the controller's results directory as the host
    sees it). Returns the final experiment (proto field names)."""
    experiment_id = json.loads(body)["experiment_id"]
    p = grpcurl(address, "mstperf.v1.SearchController/StartExperiment", data=body)
    test.assertEqual(p.returncode, 0, p.stderr + logs())
    test.assertEqual(snake(json.loads(p.stdout))["id"], experiment_id)
    p = grpcurl(address, "mstperf.v1.SearchController/WatchExperiment",
                data=json.dumps({"experiment_id": experiment_id}), max_time=max_time)
    test.assertEqual(p.returncode, 0, p.stderr + logs())
    events = [snake(e) for e in decode_stream(p.stdout)]
    test.assertEqual(events[0]["kind"], "KIND_SNAPSHOT")
    test.assertEqual(events[-1]["kind"], "KIND_EXPERIMENT_FINISHED", logs())
    kinds = {e["kind"] for e in events}
    test.assertIn("KIND_ITERATION_FINISHED", kinds)
    test.assertIn("KIND_PAIR_FINISHED", kinds)
    experiment = events[-1]["experiment"]
    test.assertEqual(experiment["state"], "EXPERIMENT_STATE_SUCCEEDED", experiment)
    pair = experiment["pairs"][0]
    check_pair_result(test, pair)
    for iteration in pair["iterations"]:
        folder = os.path.join(results_dir, iteration["directory"])
        for name in ("output.csv", "results.json", "results.csv"):
            test.assertTrue(os.path.isfile(os.path.join(folder, name)), f"{folder}/{name} missing")
    test.assertTrue(os.path.isfile(os.path.join(results_dir, "experiments", f"{experiment_id}.json")))
    return experiment
