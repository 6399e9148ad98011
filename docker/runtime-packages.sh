#!/bin/sh
# Prints the Debian packages that own the shared libraries the given binaries load, except those
# every Debian image has (libc6, libgcc-s1, libstdc++6). Runs in the builder stage; the runtime
# stage installs exactly this list. Fails when a library belongs to no package, so a runtime
# image can never miss one silently.
set -eu
libs=$(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
owners=""
for lib in $libs; do
  real=$(realpath "$lib")
  found=""
  for candidate in "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"; do
    if owner=$(dpkg -S "$candidate" 2>/dev/null); then
      found="${owner%%:*}"
      break
    fi
  done
  if [ -z "$found" ]; then
    echo "runtime-packages: no Debian package owns $lib" >&2
    exit 1
  fi
  owners="$owners $found"
done
for p in $owners; do echo "$p"; done | sort -u | grep -v -x -E 'libc6|libgcc-s1|libstdc\+\+6' || true
