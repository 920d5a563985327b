# Sourced by .ci/run: prepare a fresh Debian machine (root) for `make sam-local`, and undo what it started.
#
#   docker_host_up     install the Debian packages that are missing, start dockerd if it does not answer,
#                      mount binfmt_misc and register qemu-aarch64 (arm64 containers run under qemu-user-static)
#   docker_host_down   stop the dockerd that docker_host_up started (and nothing else)
#
# Only Debian's archive is used (apt-get); no container registry is needed or contacted.

DOCKER_CLIENT=/usr/bin/docker   # Debian's docker.io client (a newer one on PATH may lack the legacy builder)
DOCKER_HOST_PACKAGES="docker.io debootstrap qemu-user-static binfmt-support ca-certificates"
DOCKERD_LOG=${DOCKERD_LOG:-${TMPDIR:-/tmp}/sam-local-dockerd.log}
STARTED_DOCKERD_PID=""

_host_log() { printf 'docker-host: %s\n' "$*" >&2; }

_missing_packages() {
  local p
  for p in $DOCKER_HOST_PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
  done
}

_install_packages() {
  local missing
  missing=$(_missing_packages)
  [ -z "$missing" ] && return 0
  [ "$(id -u)" = 0 ] || { _host_log "missing Debian packages ($missing) and not root: install them first"; return 1; }
  _host_log "apt-get install $missing"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null
}

_start_dockerd() {
  "$DOCKER_CLIENT" info >/dev/null 2>&1 && { _host_log "dockerd answers already; using it"; return 0; }
  command -v dockerd >/dev/null || { _host_log "no dockerd on this machine"; return 1; }
  _host_log "starting dockerd (log: $DOCKERD_LOG)"
  dockerd >"$DOCKERD_LOG" 2>&1 &
  STARTED_DOCKERD_PID=$!
  local _i
  for _i in $(seq 60); do
    "$DOCKER_CLIENT" info >/dev/null 2>&1 && return 0
    kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break
    sleep 1
  done
  _host_log "dockerd did not come up; its last lines:"
  tail -15 "$DOCKERD_LOG" >&2
  return 1
}

_register_qemu_aarch64() {
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    _host_log "mounting binfmt_misc"
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 1
  fi
  [ -e "$entry" ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e "$entry" ] || { _host_log "qemu-aarch64 is not registered with binfmt_misc"; return 1; }
  # F (fix binary): the kernel opens the interpreter now, so it also works inside containers' root filesystems.
  grep -q '^flags: .*F' "$entry" || { _host_log "$entry lacks the F flag (containers could not run arm64)"; return 1; }
}

docker_host_up() {
  _install_packages || return 1
  _start_dockerd || return 1
  _register_qemu_aarch64 || return 1
  _host_log "ready: $("$DOCKER_CLIENT" version -f 'dockerd {{.Server.Version}}'), qemu-aarch64 registered"
}

docker_host_down() {
  [ -n "$STARTED_DOCKERD_PID" ] || return 0
  _host_log "stopping the dockerd started here (pid $STARTED_DOCKERD_PID)"
  kill "$STARTED_DOCKERD_PID" 2>/dev/null || true
  local _i
  for _i in $(seq 30); do kill -0 "$STARTED_DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  STARTED_DOCKERD_PID=""
}
