#!/usr/bin/env bash
# Install emotion-edge as a systemd service on a device (Raspberry Pi OS or any Debian-like
# system). Idempotent: run it again to upgrade the package; an existing config is kept.
#
#   sudo systemd/install.sh [--prefix /opt/emotion-edge] [--user emotion-edge]
#                           [--destdir DIR] [--no-enable] [--offline]
#
# --destdir installs into a staging root (packaging, tests); --no-enable skips user
# creation and systemctl; --offline installs the package without fetching dependencies
# (they must already be visible, e.g. from the system site packages).
set -euo pipefail

prefix=/opt/emotion-edge
user=emotion-edge
destdir=
enable=1
offline=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --user) user=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --no-enable) enable=0; shift ;;
        --offline) offline=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
root=${destdir%/}
etc=$root/etc/emotion-edge
state=/var/lib/emotion-edge
python=${PYTHON:-python3}

if [ "$enable" = 1 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or use --destdir DIR --no-enable" >&2
    exit 2
fi

echo "==> virtualenv in $root$prefix/venv (with system site packages, for Picamera2 from apt)"
mkdir -p "$root$prefix"
if [ ! -x "$root$prefix/venv/bin/python" ]; then
    "$python" -m venv --system-site-packages "$root$prefix/venv"
fi
pip_args=(--quiet --disable-pip-version-check)
if [ "$offline" = 1 ]; then
    pip_args+=(--no-deps --no-build-isolation --no-index)
fi
"$root$prefix/venv/bin/python" -m pip install "${pip_args[@]}" --upgrade "$repo[edge]"

echo "==> model and sample in $root$prefix/models"
mkdir -p "$root$prefix/models"
cp -r "$repo/models/." "$root$prefix/models/"

echo "==> config in $etc/config.yaml"
mkdir -p "$etc"
if [ -f "$etc/config.yaml" ]; then
    echo "    kept the existing config (the shipped default is $etc/config.yaml.dist)"
else
    # The shipped defaults, pointed at the first camera and the installed paths.
    sed -e "s|^state_dir: .*|state_dir: $state|" \
        -e "s|^  uri: models/sample/astronaut.mp4|  uri: 0|" \
        -e "s|^  path: models/emotion_int8.tflite|  path: $prefix/models/emotion_int8.tflite|" \
        -e "s|^    path: events.jsonl|    path: $state/events.jsonl|" \
        "$repo/config.yaml" > "$etc/config.yaml"
    chmod 0640 "$etc/config.yaml"
fi
cp "$repo/config.yaml" "$etc/config.yaml.dist"

echo "==> unit in $root/etc/systemd/system/emotion-edge.service"
mkdir -p "$root/etc/systemd/system"
sed -e "s|/opt/emotion-edge|$prefix|g" -e "s|^User=.*|User=$user|" -e "s|^Group=.*|Group=$user|" \
    "$repo/systemd/emotion-edge.service" > "$root/etc/systemd/system/emotion-edge.service"

if [ "$enable" = 1 ]; then
    if ! id "$user" >/dev/null 2>&1; then
        echo "==> system user $user"
        useradd --system --home-dir "$state" --no-create-home --shell /usr/sbin/nologin "$user"
    fi
    for group in video render; do
        getent group "$group" >/dev/null && usermod -a -G "$group" "$user"
    done
    chgrp "$user" "$etc/config.yaml"
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable emotion-edge.service
        systemctl restart emotion-edge.service
        echo "==> running: journalctl -u emotion-edge -f to follow it"
    else
        echo "==> systemd is not running here; start it later with: systemctl enable --now emotion-edge"
    fi
fi
echo "done."
