"""What the podman end-to-end tests share: the private container configuration of
scripts/lib/containers.sh, a checked `podman` runner, free loopback ports, and the images
(built by scripts/images.sh, or the ones `make images` just made)."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "integration", "deploy"))
from deploy_lib import ROOT  # noqa: E402


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
