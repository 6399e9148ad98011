#!/usr/bin/env bash
# Placeholder: filled in by its issue.
set -euo pipefail
echo "down: not built yet" >&2
