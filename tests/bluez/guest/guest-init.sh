#!/bin/sh
# Runs once at boot (waystation-bluez.service). Mounts two read-only virtio-9p shares from the
# host: "harness" (tests/bluez/guest of the work tree that runs the tests) at /mnt/harness and
# "project" (the Waystation tree under test) at /mnt/src, then hands over to
# /mnt/harness/runner.py, so a change to the project or to the runner never rebuilds the image.
# Whatever happens, the guest powers off.
set -u
modprobe 9pnet_virtio || true
modprobe 9p || true
ok=1
for share in harness:/mnt/harness project:/mnt/src; do
    tag=${share%%:*}
    dir=${share#*:}
    mkdir -p "$dir"
    if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 "$tag" "$dir"; then
        echo "waystation-guest: cannot mount the $tag share" > /dev/console
        ok=0
    fi
done
if [ "$ok" = 1 ]; then
    /opt/waystation/venv/bin/python /mnt/harness/runner.py
    echo "waystation-guest: runner exited $?" > /dev/console
fi
systemctl poweroff --force
