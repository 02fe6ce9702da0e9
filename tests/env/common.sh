# gst-matrixrtc: settings shared by tests/env/{install,up,down,...}. Sourced, not run.
# Caches live outside the checkout so that a fresh clone on the same machine reuses them.
# SPDX-License-Identifier: LGPL-2.1-or-later

MATRIXRTC_SOURCE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MATRIXRTC_CACHE=${GST_MATRIXRTC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gst-matrixrtc}
MATRIXRTC_STACK_DIR=${MATRIXRTC_STACK_DIR:-$MATRIXRTC_CACHE/stack}
MATRIXRTC_LOG_DIR=$MATRIXRTC_STACK_DIR/logs
MATRIXRTC_RUN_DIR=$MATRIXRTC_STACK_DIR/run
MATRIXRTC_VENV=$MATRIXRTC_CACHE/venv
MATRIXRTC_BIN=$MATRIXRTC_CACHE/bin
MATRIXRTC_BUILD_DIR=${MATRIXRTC_BUILD_DIR:-$MATRIXRTC_SOURCE_ROOT/build}

# Pinned versions of the servers.
LIVEKIT_SERVER_VERSION=v1.13.5
LIVEKIT_SERVER_BIN=$MATRIXRTC_BIN/livekit-server-$LIVEKIT_SERVER_VERSION

# Ports, all on 127.0.0.1; every one can be overridden from the environment.
MATRIXRTC_SYNAPSE_PORT=${MATRIXRTC_SYNAPSE_PORT:-8008}
MATRIXRTC_SYNAPSE_TLS_PORT=${MATRIXRTC_SYNAPSE_TLS_PORT:-8448}
MATRIXRTC_SFU_A_PORT=${MATRIXRTC_SFU_A_PORT:-7880}
MATRIXRTC_SFU_A_TCP_PORT=${MATRIXRTC_SFU_A_TCP_PORT:-7881}
MATRIXRTC_SFU_A_UDP_PORT=${MATRIXRTC_SFU_A_UDP_PORT:-7882}
MATRIXRTC_SFU_B_PORT=${MATRIXRTC_SFU_B_PORT:-7890}
MATRIXRTC_SFU_B_TCP_PORT=${MATRIXRTC_SFU_B_TCP_PORT:-7891}
MATRIXRTC_SFU_B_UDP_PORT=${MATRIXRTC_SFU_B_UDP_PORT:-7892}
MATRIXRTC_JWT_A_PORT=${MATRIXRTC_JWT_A_PORT:-8080}
MATRIXRTC_JWT_B_PORT=${MATRIXRTC_JWT_B_PORT:-8081}

MATRIXRTC_SERVER_NAME=localhost:$MATRIXRTC_SYNAPSE_TLS_PORT
MATRIXRTC_TEST_USERS="alice bob carol dave"

# The Debian packages the build, the tests and the demo need.
MATRIXRTC_APT_PACKAGES="meson ninja-build pkg-config gcc clang clang-format libclang-rt-14-dev
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-base-apps gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-nice libnice-dev gstreamer1.0-libav libsoup-3.0-dev libjson-glib-dev libolm-dev
  libssl-dev openssl libprotobuf-c-dev protobuf-c-compiler sqlite3 curl ca-certificates"

log () { printf '%s\n' "$*" >&2; }
die () { printf 'error: %s\n' "$*" >&2; exit 1; }

MATRIXRTC_SERVICES="synapse sfu-a sfu-b jwt-a jwt-b"

# running NAME: the process recorded in run/NAME.pid is alive and is one that tests/env/up started
# (it carries this stack's directory in its environment).
running () {
  local pidfile="$MATRIXRTC_RUN_DIR/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qF "$MATRIXRTC_STACK_DIR" "/proc/$pid/environ" 2>/dev/null
}
