#!/usr/bin/env bash
# Builds the four mstperf images (simulator, loadgen, evaluator, controller + mstperfctl) from
# docker/Dockerfile with buildah, without a Docker engine and without pulling anything:
#   1. a `debian:bookworm-slim` equivalent is made once with debootstrap from this machine's
#      Debian mirror and imported into a private image store (skipped when it is there);
#   2. each target of docker/Dockerfile is built with `buildah bud --isolation chroot --layers`,
#      so the builder stage compiles once and later runs reuse every unchanged layer.
# Images are tagged mstperf-<service>:<version> and :latest in the private store
# (MSTPERF_CONTAINERS_DIR, default .containers/); scripts/lib/containers.sh says how it is set up.
#
#   scripts/images.sh                 build all four
#   scripts/images.sh loadgen ...     build some
#   scripts/images.sh base            only make the base image
#   MSTPERF_DEBIAN_MIRROR=URL         the mirror for debootstrap (default: from /etc/apt/sources.list*)
#   MSTPERF_BUILD_JOBS=N              compile jobs inside the builder (default 2)
#   MSTPERF_IMAGES_SAVE_DIR=DIR       also write each image as DIR/mstperf-<service>.tar (docker-archive)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/containers.sh
containers_setup

VERSION="$(mstperf_version)"
SERVICES=("$@")
[ ${#SERVICES[@]} -eq 0 ] && SERVICES=(simulator loadgen evaluator controller)
BASE_IMAGE="docker.io/library/debian:bookworm-slim"
log() { echo "images: $*" >&2; }

# The URI of the Debian archive serving `bookworm` in this machine's apt sources (deb822 or
# one-line format), and the one serving `bookworm-security`.
apt_source_uri() {
  local suite="$1"
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
      2>/dev/null | awk -v suite="$suite" '
    /^[[:space:]]*#/ { next }
    /^deb[[:space:]]/ {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i+1) == suite) { print $i; exit }
      next
    }
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (j = 2; j <= NF; j++) if ($j == suite && uri != "") { print uri; exit } }
    /^[[:space:]]*$/ { uri = "" }'
}

make_base_image() {
  # An image that has the slim image's PATH (an older run's import lacked it) is kept.
  if podman image exists "$BASE_IMAGE" &&
     podman image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$BASE_IMAGE" | grep -q '^PATH='; then
    return 0
  fi
  local mirror="${MSTPERF_DEBIAN_MIRROR:-$(apt_source_uri bookworm)}"
  local security="${MSTPERF_DEBIAN_SECURITY_MIRROR:-$(apt_source_uri bookworm-security)}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  security="${security:-http://deb.debian.org/debian-security}"
  local root="$MSTPERF_CONTAINERS_DIR/base-rootfs"
  log "making $BASE_IMAGE with debootstrap from $mirror"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" "$mirror" > "$MSTPERF_CONTAINERS_DIR/debootstrap.log" 2>&1 || {
    tail -20 "$MSTPERF_CONTAINERS_DIR/debootstrap.log" >&2
    return 1
  }
  # What the official slim image does: apt sources in deb822 form, no docs/man pages/locales
  # installed by later apt-get calls, no package lists or caches in the image.
  rm -f "$root/etc/apt/sources.list"
  cat > "$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat > "$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
  cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
         "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log "$root"/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # /dev, /proc and /sys are mounted by the runtime; debootstrap leaves device nodes there.
  rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/*
  tar -C "$root" --numeric-owner -c . |
    podman import --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --message "debootstrap --variant=minbase bookworm $mirror" \
      - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  log "base image ready"
}

build_image() {
  local svc="$1" start=$SECONDS
  log "building mstperf-$svc:$VERSION"
  buildah bud --isolation chroot --layers --force-rm --pull=never --format docker \
      --build-arg "BUILD_JOBS=${MSTPERF_BUILD_JOBS:-2}" \
      -f docker/Dockerfile --target "$svc" \
      -t "localhost/mstperf-$svc:$VERSION" -t "localhost/mstperf-$svc:latest" . \
      > "$MSTPERF_CONTAINERS_DIR/build-$svc.log" 2>&1 || {
    tail -40 "$MSTPERF_CONTAINERS_DIR/build-$svc.log" >&2
    log "build of $svc failed (full log: $MSTPERF_CONTAINERS_DIR/build-$svc.log)"
    return 1
  }
  # Every shared library the binaries need must be in the runtime image.
  if podman run --rm --entrypoint /bin/sh "localhost/mstperf-$svc:$VERSION" \
       -c 'ldd /usr/local/bin/* | grep "not found"'; then
    log "mstperf-$svc misses shared libraries (above)"
    return 1
  fi
  log "mstperf-$svc:$VERSION built in $((SECONDS - start)) s"
  if [ -n "${MSTPERF_IMAGES_SAVE_DIR:-}" ]; then
    mkdir -p "$MSTPERF_IMAGES_SAVE_DIR"
    rm -f "$MSTPERF_IMAGES_SAVE_DIR/mstperf-$svc.tar"
    podman save --format docker-archive -o "$MSTPERF_IMAGES_SAVE_DIR/mstperf-$svc.tar" \
      "localhost/mstperf-$svc:$VERSION"
  fi
}

make_base_image
for svc in "${SERVICES[@]}"; do
  case "$svc" in
    simulator|loadgen|evaluator|controller) build_image "$svc" ;;
    base) ;;  # only the base image
    *) log "unknown service '$svc' (simulator, loadgen, evaluator, controller)"; exit 2 ;;
  esac
done
podman images --filter reference='localhost/mstperf-*' --format '{{.Repository}}:{{.Tag}} {{.Size}}' >&2
