#!/usr/bin/env bash
# Lints every Grafana dashboard in grafana/dashboards/ (or the files given as arguments).
#
# The linter is tools/dashboard-lint: the rules of Grafana's dashboard-linter (same names:
# template-datasource-rule, panel-datasource-rule, panel-units-rule, panel-title-description-rule,
# target-promql-rule, target-rate-interval-rule, target-counter-agg-rule, ...) plus ours (fixed
# uid, no __inputs, and a strict decoding into Grafana's dashboard model from the
# grafana-foundation-sdk), checking PromQL with Prometheus' own parser. It is built from the Go module
# proxy (GOPROXY as configured on the machine) into .tools/bin/ and rebuilt only when its
# sources change. Grafana's own linter is not served by the module proxy; when
# DASHBOARD_LINTER_VERSION is set, this script also installs that version of
# github.com/grafana/dashboard-linter and runs it with --strict.
#
#   scripts/dashboard-lint.sh            build if needed, lint grafana/dashboards/*.json
#   scripts/dashboard-lint.sh --build    only build (for `make tools`)
#   scripts/dashboard-lint.sh FILE...    lint these files
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${root}/.tools/bin"
linter="${bin_dir}/dashboard-lint"
src="${root}/tools/dashboard-lint"

build() {
  # Rebuild when a source file is newer than the binary (or there is no binary yet).
  if [[ -x "${linter}" ]] && [[ -z "$(find "${src}" -newer "${linter}" -type f -print -quit)" ]]; then
    return 0
  fi
  command -v go >/dev/null || { echo "dashboard-lint: 'go' not found (install Go)" >&2; exit 1; }
  mkdir -p "${bin_dir}"
  echo "dashboard-lint: building ${linter}" >&2
  (cd "${src}" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -o "${linter}.tmp" .)
  mv "${linter}.tmp" "${linter}"
}

build
if [[ -n "${DASHBOARD_LINTER_VERSION:-}" && ! -x "${bin_dir}/dashboard-linter" ]]; then
  GOBIN="${bin_dir}" GOFLAGS="-mod=mod -buildvcs=false" \
    go install "github.com/grafana/dashboard-linter@${DASHBOARD_LINTER_VERSION}"
fi
[[ "${1:-}" == "--build" ]] && exit 0

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  shopt -s nullglob
  files=("${root}"/grafana/dashboards/*.json)
  [[ ${#files[@]} -gt 0 ]] || { echo "dashboard-lint: no dashboards in grafana/dashboards" >&2; exit 1; }
fi

"${linter}" "${files[@]}"
if [[ -n "${DASHBOARD_LINTER_VERSION:-}" ]]; then
  for f in "${files[@]}"; do
    "${bin_dir}/dashboard-linter" lint --strict "${f}"
  done
fi
