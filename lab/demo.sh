#!/bin/bash
# lab/demo.sh: what `make demo` runs. As root on a Debian machine it installs
# the missing host tools, builds (or reuses) the lab image, runs the most
# complete scenario there is and prints a short report.
#
#   bash lab/demo.sh              # runs seamless-update-handoff
#   bash lab/demo.sh reboot-cold  # or any scenario name or file
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

# The most complete scenario that exists today: the old-kernel side of a
# seamless update (the image reaches the new kernel; restore is issue 7).
SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=(seamless-update-handoff)

lab_require_root
lab_install_deps
lab_build_tool
"$LAB_BIN" build
lab_log "running ${SCENARIOS[*]} (boot, kernel update, checks: a few minutes under TCG)"
"$LAB_BIN" run "${SCENARIOS[@]}"
