# Sourced by scripts/images.sh and the container end-to-end test: a private podman/buildah setup
# that works on this machine (no Docker engine, no systemd, no registry) and touches nothing
# outside its own folder, so it cannot disturb another container user on the machine.
#
#   MSTPERF_CONTAINERS_DIR  the folder (default <repo>/.containers, gitignored)
#
# After sourcing, `podman` and `buildah` use: the vfs storage driver (no overlay or fuse needed),
# runc with cgroupfs (no systemd), file events, netavark networks with aardvark DNS (containers
# on one network reach each other by name), and default ulimits that runc can set here.

MSTPERF_REPO_ROOT="${MSTPERF_REPO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
MSTPERF_CONTAINERS_DIR="${MSTPERF_CONTAINERS_DIR:-$MSTPERF_REPO_ROOT/.containers}"

# The Debian packages the container tooling needs; installed on first use only (not part of
# scripts/deps.sh: `make test` does not need them, only `make images` and `make e2e`).
containers_install_packages() {
  local pkgs=(buildah podman debootstrap runc catatonit netavark aardvark-dns containernetworking-plugins
              uidmap iptables slirp4netns)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "containers: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

containers_write_config() {
  local d="$MSTPERF_CONTAINERS_DIR"
  mkdir -p "$d"/{storage,run,tmp,networks,volumes}
  cat > "$d/storage.conf.new" <<CONF
[storage]
driver = "vfs"
graphroot = "$d/storage"
runroot = "$d/run"
CONF
  cat > "$d/containers.conf.new" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$d/events.log"
tmp_dir = "$d/tmp"
volume_path = "$d/volumes"
static_dir = "$d/storage/libpod"

[network]
network_backend = "netavark"
network_config_dir = "$d/networks"
CONF
  cat > "$d/registries.conf.new" <<CONF
# Short names (debian:bookworm-slim, mstperf-loadgen:0.1.0) resolve to images already in this
# private store first; nothing here is ever pulled unless asked.
unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
CONF
  local f
  for f in storage.conf containers.conf registries.conf; do
    if cmp -s "$d/$f.new" "$d/$f"; then rm -f "$d/$f.new"; else mv "$d/$f.new" "$d/$f"; fi
  done
  export CONTAINERS_STORAGE_CONF="$d/storage.conf"
  export CONTAINERS_CONF="$d/containers.conf"
  export CONTAINERS_REGISTRIES_CONF="$d/registries.conf"
  export BUILDAH_ISOLATION=chroot
  export STORAGE_DRIVER=vfs
  export TMPDIR="$d/tmp"
}

containers_setup() {
  containers_install_packages
  containers_write_config
}

# The project's version (CMake's project VERSION), used as the image tag.
mstperf_version() {
  sed -n 's/^project(mstperf VERSION \([0-9.]*\).*/\1/p' "$MSTPERF_REPO_ROOT/CMakeLists.txt"
}
