#!/bin/bash
# lab/demo.sh: what `make demo` runs. As root on a Debian machine it installs
# the missing host tools, builds (or reuses) the lab image, and runs a
# kernel update as users get it (the seamless package installed with apt,
# then `apt-get upgrade` of the kernel, which ends in a seamless update by
# itself) next to the two ways it replaces (a plain kexec and a reboot),
# each with the same host client, and prints a report for each and a
# comparison table.
#
#   bash lab/demo.sh                  # apt-upgrade kexec-plain reboot-cold
#   bash lab/demo.sh seamless-update  # or any scenario names or files
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

SCENARIOS=("$@")
[ "${#SCENARIOS[@]}" -gt 0 ] || SCENARIOS=(apt-upgrade kexec-plain reboot-cold)

lab_require_root
lab_install_deps
lab_build_tool
"$LAB_BIN" build
lab_log "running ${SCENARIOS[*]} (each: boot, kernel update, checks; 4 to 8 minutes under TCG)"
"$LAB_BIN" run "${SCENARIOS[@]}"
