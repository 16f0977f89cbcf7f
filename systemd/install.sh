#!/usr/bin/env bash
# Install emotion-edge as a systemd service on a device (Raspberry Pi OS or any Debian-like
# system). Idempotent: run it again to upgrade the package; an existing config is kept.
#
#   sudo systemd/install.sh [--prefix /opt/emotion-edge] [--user emotion-edge]
#                           [--mqtt-password-file FILE] [--destdir DIR] [--no-enable]
#                           [--offline] [--with-yunet]
#
# --mqtt-password-file copies FILE to /etc/emotion-edge/mqtt.password (mode 0640, owner
# root, group the service user) and points sinks.mqtt.password_file at it.
# --destdir installs into a staging root (packaging, tests); --no-enable skips user
# creation and systemctl; --offline installs the package without fetching anything: its
# dependencies must already be visible (e.g. from the system site packages), and the
# package is built by $PYTHON's own setuptools and wheel (on Raspberry Pi OS:
# apt install python3-setuptools python3-wheel). --with-yunet also fetches the YuNet face
# detector's model (python -m edge.fetch yunet: a download, its sha256 checked) into
# $prefix/models/yunet/, for detector.kind: yunet.
set -euo pipefail

prefix=/opt/emotion-edge
user=emotion-edge
destdir=
enable=1
offline=0
password_file=
yunet=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --user) user=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        --no-enable) enable=0; shift ;;
        --offline) offline=1; shift ;;
        --mqtt-password-file) password_file=$2; shift 2 ;;
        --with-yunet) yunet=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

# Both end up inside sed expressions, the unit file and paths: refuse anything that could
# break out of them (a '|', '&', space or newline) instead of quoting it.
if ! [[ "$prefix" =~ ^/[A-Za-z0-9._/+-]*$ ]] || [[ "$prefix" == *..* ]]; then
    echo "install.sh: --prefix must be an absolute path of letters, digits and ._/+-," \
         "got '$prefix'" >&2
    exit 2
fi
if ! [[ "$user" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]]; then
    echo "install.sh: --user must be a system user name (a-z, 0-9, _ and -), got '$user'" >&2
    exit 2
fi
if [ "$user" = root ]; then
    echo "install.sh: --user root would run the camera service with every privilege; give" \
         "a system user of its own (default emotion-edge)" >&2
    exit 2
fi
if [ -n "$password_file" ] && [ ! -r "$password_file" ]; then
    echo "install.sh: --mqtt-password-file $password_file: not a readable file" >&2
    exit 2
fi

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
    # Nothing may be fetched, so no isolated build environment: build the wheel with the
    # calling Python's setuptools and wheel, then install it without its dependencies.
    if ! "$python" -c "import setuptools, wheel" 2>/dev/null; then
        echo "install.sh: --offline builds the package with $python's setuptools and wheel," \
             "which it lacks; install them (apt install python3-setuptools python3-wheel," \
             "or pip install setuptools wheel) or drop --offline" >&2
        exit 2
    fi
    wheels=$(mktemp -d)
    trap 'rm -rf "$wheels"' EXIT
    "$python" -m pip wheel "${pip_args[@]}" --no-deps --no-build-isolation --no-index \
        --wheel-dir "$wheels" "$repo"
    "$root$prefix/venv/bin/python" -m pip install "${pip_args[@]}" --no-deps --no-index \
        --upgrade --force-reinstall "$wheels"/*.whl
else
    "$root$prefix/venv/bin/python" -m pip install "${pip_args[@]}" --upgrade "$repo[edge]"
fi

echo "==> model and sample in $root$prefix/models"
mkdir -p "$root$prefix/models"
cp -r "$repo/models/." "$root$prefix/models/"
if [ "$yunet" = 1 ]; then
    "$root$prefix/venv/bin/python" -m edge.fetch yunet \
        --to "$root$prefix/models/yunet/face_detection_yunet_2026may.onnx"
fi

echo "==> config in $etc/config.yaml"
mkdir -p "$etc"
if [ -f "$etc/config.yaml" ]; then
    echo "    kept the existing config (the shipped default is $etc/config.yaml.dist)"
else
    # The shipped defaults, pointed at the first camera and the installed paths.
    sed -e "s|^state_dir: .*|state_dir: $state|" \
        -e "s|^  uri: models/sample/astronaut.mp4|  uri: 0|" \
        -e "s|^  path: models/\([a-z0-9_]*\.tflite\)$|  path: $prefix/models/\1|" \
        -e "s|^    path: events.jsonl|    path: $state/events.jsonl|" \
        -e "s|^  model: models/yunet/|  model: $prefix/models/yunet/|" \
        "$repo/config.yaml" > "$etc/config.yaml"
    chmod 0640 "$etc/config.yaml"
fi
cp "$repo/config.yaml" "$etc/config.yaml.dist"
if [ -n "$password_file" ]; then
    echo "==> MQTT password in $etc/mqtt.password (0640, group $user)"
    install -m 0640 "$password_file" "$etc/mqtt.password"
    sed -i -e "s|^    password_file:.*|    password_file: /etc/emotion-edge/mqtt.password|" \
        "$etc/config.yaml"
fi

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
    if [ -f "$etc/mqtt.password" ]; then
        chown root:"$user" "$etc/mqtt.password"
    fi
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
