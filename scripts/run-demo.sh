#!/usr/bin/env bash
# Placeholder: filled in by its issue.
set -euo pipefail
echo "run-demo: not built yet" >&2
