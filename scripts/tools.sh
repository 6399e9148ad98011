#!/usr/bin/env bash
# Builds the command-line tools the tests use into .tools/bin (gitignored), pinned, from the Go
# module proxy, and reuses them when they are there (`make test` runs this every time: a cached
# run only compares a few stamps):
#   grpcurl        github.com/fullstorydev/grpcurl/cmd/grpcurl   (drives the services by reflection)
#   helm           helm.sh/helm/v3/cmd/helm                      (lint and template the chart)
#   kube-validate  tools/kube-validate (ours: strict decoding of rendered manifests into the
#                  Kubernetes API types; rebuilt when its sources change)
# and, when the observability work's scripts/dashboard-lint.sh is there, its dashboard linter.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"

GRPCURL_VERSION=v1.9.4
HELM_VERSION=v3.22.0

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GOBIN="$BIN"
log() { echo "tools: $*" >&2; }

need_go() {
  command -v go >/dev/null || { log "go is not installed (needed once to build $1)"; exit 1; }
}

# go_install NAME PACKAGE VERSION [LDFLAGS]: builds PACKAGE@VERSION into .tools/bin/NAME unless
# that exact version is already there.
go_install() {
  local name="$1" pkg="$2" version="$3" ldflags="${4:-}"
  local stamp="$BIN/.$name.version"
  if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pkg@$version $ldflags" ]; then
    return 0
  fi
  need_go "$name"
  log "building $name $version (once; later runs reuse it)"
  go install -ldflags "$ldflags" "$pkg@$version"
  echo "$pkg@$version $ldflags" > "$stamp"
}

go_install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION" \
  "-X main.version=$GRPCURL_VERSION"
# As helm's own Makefile does: its version, and the Kubernetes version `helm template` and
# `helm lint` assume (that of its client-go, v0.37 = Kubernetes 1.37; without these ldflags a
# `go install`ed helm assumes 1.20 and refuses the chart's kubeVersion).
go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
   -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37 \
   -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"

# kube-validate: rebuilt when any of its files changes.
kv_src="$ROOT/tools/kube-validate"
kv_hash="$(cd "$kv_src" && cat go.mod go.sum ./*.go | sha256sum | cut -d' ' -f1)"
if [ ! -x "$BIN/kube-validate" ] || [ "$(cat "$BIN/.kube-validate.version" 2>/dev/null)" != "$kv_hash" ]; then
  need_go kube-validate
  log "building kube-validate"
  (cd "$kv_src" && go build -o "$BIN/kube-validate" .)
  echo "$kv_hash" > "$BIN/.kube-validate.version"
fi

if [ -x "$ROOT/scripts/dashboard-lint.sh" ]; then
  "$ROOT/scripts/dashboard-lint.sh" --build
fi
