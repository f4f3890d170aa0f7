#!/usr/bin/env bash
# Builds the systemd test host image (Debian 12) locally: no registry is needed or reachable.
#   molecule/shared/build-image.sh [--force]
set -euo pipefail
# The tag follows this script's content, so a changed recipe builds a new image everywhere.
IMAGE="${FLORA_TESTHOST_IMAGE:-localhost/flora-testhost:bookworm-$(sha256sum "$0" | cut -c1-12)}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"

if [ "${1:-}" != "--force" ] && podman image exists "$IMAGE"; then
  echo "$IMAGE exists"
  exit 0
fi
mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | awk '{print $2}' | grep -v security | head -n1 || true)
mirror="${mirror:-http://deb.debian.org/debian}"
rootfs=$(mktemp -d /var/tmp/flora-testhost.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase \
  --include=python3,python3-apt,sudo,git,curl,ca-certificates,systemd,systemd-sysv,dbus,procps,iproute2,xz-utils,tar,gnupg,openssh-server \
  bookworm "$rootfs" "$mirror"
# HTTPS to the npm registry inside the host needs the controller's CA bundle.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
echo "deb $mirror bookworm main" > "$rootfs/etc/apt/sources.list"
# SSH on loopback port 2222 (the host network's 22 belongs to the machine): playbooks reach the test host as
# they reach EC2, over SSH with pipelining. Keys are authorised per test run.
printf 'Port 2222\nListenAddress 127.0.0.1\nPasswordAuthentication no\n' > "$rootfs/etc/ssh/sshd_config.d/flora-test.conf"
# Units that cannot work in a container only slow boot down.
for unit in systemd-remount-fs.service getty@tty1.service console-getty.service systemd-udevd.service \
            systemd-udev-trigger.service systemd-networkd.service systemd-resolved.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -rf "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$IMAGE"
echo "built $IMAGE"
