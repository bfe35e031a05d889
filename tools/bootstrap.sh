#!/bin/sh
# Installs the Debian packages of a list (default tools/debian-packages.txt, what `make test`
# needs; tools/debian-packages-run.txt is what `make run` needs) that are not installed yet.
# Idempotent: when everything is present it does nothing and touches no network.
set -eu
here=$(dirname "$0")
list=${1:-$here/debian-packages.txt}
missing=""
for pkg in $(grep -v '^#' "$list"); do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
echo "bootstrap: installing Debian packages:$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
