#!/bin/bash
# lab/ci.sh: what CI runs after the unit tests. Installs the missing host
# tools, builds the bookworm lab image (cold: ~5 min, see docs/lab.md), runs
# the end-to-end scenarios and exits non-zero if one fails. Reports are
# written to $LAB_REPORT (default lab-report.json in the current directory).
#
#   bash lab/ci.sh                        # apt-upgrade: the package, apt, apply = now, the whole update
#   LAB_SCENARIOS="kexec-plain reboot-cold" bash lab/ci.sh
#   LAB_SCENARIOS=all bash lab/ci.sh      # every scenario on every guest (make lab-all; hours)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

read -r -a SCENARIOS <<< "${LAB_SCENARIOS:-apt-upgrade}"
REPORT=${LAB_REPORT:-$PWD/lab-report.json}

lab_require_root
lab_install_deps
lab_build_tool
lab_log "lab unit tests"
go test ./lab/...
start=$(date +%s)
guests=bookworm
[ "${SCENARIOS[*]}" = all ] && guests=all
"$LAB_BIN" build --guest "$guests"
lab_log "image ready after $(( $(date +%s) - start )) s"
status=0
"$LAB_BIN" run --json "$REPORT" "${SCENARIOS[@]}" || status=$?
lab_log "lab finished in $(( $(date +%s) - start )) s, status $status, report $REPORT"
exit "$status"
