#!/bin/sh
# Install the license file of Go and of each module linked into the static
# binary into DIR: the binary carries their code. Both packages call it.
#   packaging/licenses.sh GO DIR
set -eu
go=$1 lic=$2
mkdir -p "$lic"
install -m 0644 "$("$go" env GOROOT)/LICENSE" "$lic/go"
"$go" list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Dir}}{{end}}{{end}}' ./cmd/seamless | sort -u |
	while read -r mod dir; do
		f=$(ls "$dir"/LICENSE* "$dir"/COPYING* 2>/dev/null | head -1)
		[ -n "$f" ] || { echo "licenses.sh: no license file in module $mod ($dir)" >&2; exit 1; }
		install -m 0644 "$f" "$lic/$(echo "$mod" | tr / _)"
	done
