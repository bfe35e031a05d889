#!/usr/bin/env bash
# Build the Waystation Raspberry Pi image (Debian bookworm arm64) without loop mounts.
#
#   sudo images/raspberrypi/build.sh [OUT_DIR]          (make image)
#
# Output in OUT_DIR (default build/image): waystation-<version>-rpi-arm64.img.xz, .bmap, .sha256,
# and the uncompressed .img beside them (the boot test uses it).
#
# Steps (docs/operations.md, "The Raspberry Pi image"):
#  1. base root file system: mmdebstrap --arch=arm64 of packages.txt from Debian's archive
#     (main + non-free-firmware), foreign code run by qemu-user through binfmt_misc. Cached as a
#     tarball keyed on packages.txt and this script's BASE_RECIPE, in $WAYSTATION_IMAGE_CACHE
#     (default build/cache): only the first build of a package list pays the ~15 minutes.
#  2. app layer, in a copy of the base: Waystation and its Python dependencies, pinned by
#     constraints.txt, in a venv under /opt/waystation built from aarch64 wheels (no compiler);
#     the systemd units, first-boot script, BlueZ, journald and fstab settings from overlay/;
#     the raspi-firmware hook re-run with ROOTPART/CONSOLES for this image.
#  3. partitions made as files (mkfs.vfat + mcopy, mkfs.ext4 -d) and placed into the image with
#     sfdisk and dd: no loop device, no mount.
#  4. xz, bmaptool, sha256sum.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(realpath -m "${1:-$repo/build/image}")
cache=$(realpath -m "${WAYSTATION_IMAGE_CACHE:-$repo/build/cache}")
BASE_RECIPE=3  # bump when the base step below changes in a way packages.txt does not show

say() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap --mode=root, file ownership in the image)"
for tool in mmdebstrap sfdisk mkfs.vfat mcopy mkfs.ext4 xz bmaptool arch-test python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (tools/debian-packages.txt lists it)"
done

# binfmt_misc: foreign (arm64) binaries run through qemu-user. On a fresh machine the file
# system may not be mounted and the qemu-aarch64 entry not enabled.
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc: arm64 code cannot run here"
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
arch-test arm64 >/dev/null || die "arm64 binaries do not run here (qemu-user-static + binfmt_misc)"

version=$(python3 -c 'import ast,sys; t=ast.parse(open(sys.argv[1]).read());
print(next(n.value.value for n in t.body if isinstance(n, ast.Assign)
      and n.targets[0].id == "__version__"))' "$repo/node/__init__.py")
name="waystation-$version-rpi-arm64"
mkdir -p "$out" "$cache"
work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The Debian mirrors this machine's apt already uses (no host is named in the repository);
# WAYSTATION_DEBIAN_MIRROR / WAYSTATION_DEBIAN_SECURITY override them.
mirror_of() {
    apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(TARGET_OF)' 2>/dev/null \
        | awk -v rel="$1" '$2 == rel && $3 == "deb" { print $1; exit }'
}
mirror=${WAYSTATION_DEBIAN_MIRROR:-$(mirror_of bookworm)}
security=${WAYSTATION_DEBIAN_SECURITY:-$(mirror_of bookworm-security)}
[ -n "$mirror" ] || die "no Debian bookworm mirror in this machine's apt sources; set WAYSTATION_DEBIAN_MIRROR"
components="main non-free-firmware"
sources=("deb ${mirror%/} bookworm $components" "deb ${mirror%/} bookworm-updates $components")
[ -n "$security" ] && sources+=("deb ${security%/} bookworm-security $components")

# -- 1. base ------------------------------------------------------------------------------------
packages=$(grep -v '^\s*#' "$here/packages.txt" | xargs | tr ' ' ',')
key=$( (cat "$here/packages.txt"; echo "recipe=$BASE_RECIPE") | sha256sum | cut -c1-16)
base="$cache/base-$key.tar"
if [ ! -s "$base" ]; then
    say "building the base root file system (cached as $base; ~15 min under emulation)"
    start=$(date +%s)
    mmdebstrap --mode=root --architectures=arm64 --variant=apt \
        --components="$components" --include="$packages" \
        --aptopt='Acquire::Retries "3"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* ; echo uninitialized > "$1"/etc/machine-id' \
        bookworm "$work/base.tar" "${sources[@]}"
    mv "$work/base.tar" "$base"
    say "base built in $(( $(date +%s) - start )) s"
fi

# -- 2. app layer -------------------------------------------------------------------------------
root="$work/root"
mkdir "$root"
# Commands inside the image run with a clean environment (none of this machine's PIP_* settings).
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 chroot "$root" "$@"; }
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base"

say "wheels for aarch64 (pinned by constraints.txt)"
wheels="$root/tmp/wheels"
mkdir -p "$wheels"
python3 -m pip wheel -q --no-deps -w "$wheels" "$repo" >/dev/null
python3 -m pip download -q --only-binary=:all: --python-version 3.11 --implementation cp \
    --abi cp311 --abi abi3 --abi none \
    --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    --platform manylinux_2_28_aarch64 --platform any \
    -c "$here/constraints.txt" -r "$here/constraints.txt" -d "$wheels" 2>/dev/null >/dev/null \
    || die "could not fetch the aarch64 wheels listed in constraints.txt"

say "installing Waystation into /opt/waystation"
cp "$here/constraints.txt" "$root/tmp/constraints.txt"
in_root python3 -m venv /opt/waystation
in_root /opt/waystation/bin/pip install -q --no-index --find-links /tmp/wheels \
    -c /tmp/constraints.txt "waystation[ble]"
rm -rf "$wheels" "$root/tmp/constraints.txt"
find "$root/opt/waystation" -name __pycache__ -prune -exec rm -rf {} +
in_root /opt/waystation/bin/python -m compileall -q /opt/waystation/lib >/dev/null

say "system settings"
cp -a "$here/overlay/." "$root/"
install -m 0644 "$repo/config/waystation.service" "$root/etc/systemd/system/waystation.service"
install -d -m 0755 "$root/etc/waystation"
install -m 0644 "$repo/config/waystation.toml" "$root/etc/waystation/waystation.toml"
# The management console: the GPIO UART (ttyS1, the mini UART with Debian's device trees) and
# USB gadget serial (ttyGS0, Zero 2 W and Pi 4); boot-waystation.toml says the same.
sed -i '/^\[console\]/,/^\[/ s|^ports = \[\]$|ports = ["/dev/ttyS1", "/dev/ttyGS0"]|' \
    "$root/etc/waystation/waystation.toml"
grep -q '^ports = \["/dev/ttyS1", "/dev/ttyGS0"\]$' "$root/etc/waystation/waystation.toml" \
    || die "config/waystation.toml: no 'ports = []' line under [console] to set"
in_root useradd --system --home-dir /var/lib/waystation --no-create-home \
    --shell /usr/sbin/nologin --groups bluetooth,dialout waystation
in_root systemctl enable waystation.service waystation-firstboot.service \
    waystation-config.service waystation-gadget.service systemd-networkd.service \
    systemd-resolved.service systemd-timesyncd.service >/dev/null
# The console ports are the daemon's: no login getty may take them (were one ever enabled there).
in_root systemctl mask serial-getty@ttyS1.service serial-getty@ttyGS0.service >/dev/null 2>&1
# No interactive questions on the first boot (systemd-firstboot would wait for a key press on the
# console): UTC, C.UTF-8, and the root account stays locked.
in_root systemctl mask systemd-firstboot.service >/dev/null 2>&1
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
echo "Etc/UTC" > "$root/etc/timezone"
echo "LANG=C.UTF-8" > "$root/etc/locale.conf"
echo waystation > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\twaystation\n' > "$root/etc/hosts"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
passwd_root=$(in_root passwd -S root | awk '{print $2}')
[ "$passwd_root" = L ] || in_root passwd -l root >/dev/null
# The kernel hook writes config.txt and cmdline.txt: root by label, kernel console on the HDMI
# screen (tty1), so the serial line (ttyS1) belongs to the management console alone.
cat > "$root/etc/default/raspi-firmware" <<'EOF'
# Written by images/raspberrypi/build.sh.
ROOTPART=LABEL=WS_ROOT
CONSOLES="tty1"
CMA=64M
EOF
# raspi-firmware's postinst copies the firmware and runs the hook only where it can tell it is in
# a chroot (ischroot needs /proc): do both here, with /proc in a private mount namespace.
cp -a "$root"/usr/lib/raspi-firmware/. "$root/boot/firmware/"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin unshare --mount --fork chroot "$root" sh -c 'mount -t proc proc /proc &&
    DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware' >/dev/null
grep -q 'root=LABEL=WS_ROOT' "$root/boot/firmware/cmdline.txt" \
    || die "cmdline.txt does not name the root by label: $(cat "$root/boot/firmware/cmdline.txt")"
echo uninitialized > "$root/etc/machine-id"
rm -f "$root"/etc/ssh/ssh_host_* "$root"/var/lib/waystation/* 2>/dev/null || true
# The data partition's mount point, empty: the node key is made on the device (first start).
install -d -m 0755 "$root/var/lib/waystation"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/*

# -- 3. partitions ------------------------------------------------------------------------------
say "assembling the image"
boot_mib=256 root_mib=1536 data_mib=128
boot_start=8 root_start=$((8 + boot_mib)) data_start=$((8 + boot_mib + root_mib))
total_mib=$((data_start + data_mib))
mkfs.vfat -F 32 -n WS_BOOT -C "$work/boot.vfat" $((boot_mib * 1024)) >/dev/null
MTOOLS_SKIP_CHECK=1 mcopy -s -i "$work/boot.vfat" "$root"/boot/firmware/* ::
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/boot.vfat" "$here/boot-waystation.toml" ::waystation.toml
rm -rf "$root"/boot/firmware/*
mkdir -p "$work/data"
uid=$(in_root id -u waystation)
gid=$(in_root id -g waystation)
mkfs.ext4 -q -L WS_DATA -E root_owner="$uid:$gid" -d "$work/data" "$work/data.ext4" "${data_mib}M"
mkfs.ext4 -q -L WS_ROOT -d "$root" "$work/root.ext4" "${root_mib}M"
img="$out/$name.img"
rm -f "$img"
truncate -s "${total_mib}M" "$img"
sfdisk -q "$img" <<EOF
label: dos
start=${boot_start}MiB, size=${boot_mib}MiB, type=c, bootable
start=${root_start}MiB, size=${root_mib}MiB, type=83
start=${data_start}MiB, type=83
EOF
dd if="$work/boot.vfat" of="$img" bs=1M seek=$boot_start conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$img" bs=1M seek=$root_start conv=notrunc,sparse status=none
dd if="$work/data.ext4" of="$img" bs=1M seek=$data_start conv=notrunc,sparse status=none

# -- 4. compress, map, hash ---------------------------------------------------------------------
say "compressing"
bmaptool create -o "$out/$name.img.bmap" "$img"
xz -T0 -3 -k -f "$img"
(cd "$out" && sha256sum "$name.img.xz" > "$name.img.xz.sha256")
say "done: $out/$name.img.xz ($(du -h "$out/$name.img.xz" | cut -f1) compressed, ${total_mib} MiB raw)"
