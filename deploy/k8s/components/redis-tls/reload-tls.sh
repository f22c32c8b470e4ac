#!/bin/sh
# The reloader sidecar of a Redis pod. Redis reads its certificate at start only: when
# cert-manager renews Secret paraphe-redis-tls and the kubelet has updated the files mounted at
# /etc/redis-tls, this makes the pod's Redis take them. The server reloads them on a CONFIG SET
# of the same paths (Redis >= 7.0.1, redis/redis#10713). A sentinel cannot (no TLS option is
# settable in sentinel mode, redis/redis#12028), so it is shut down and the kubelet starts it
# again, on the configuration it keeps in /config. The pods' sentinels restart one at a time,
# each once the others are up, so that a failover always finds its quorum.
#
# REDIS_PASSWORD: the servers' and sentinels' password. RELOAD_SENTINEL_PORT: the sentinel's
# port, unset when the pod has none (dev). The others, for tests: the server's port, how often
# the files are looked at, and how long the sentinels wait (whole seconds).
set -u
tls=/etc/redis-tls
server_port="${RELOAD_SERVER_PORT:-6379}"
sentinel_port="${RELOAD_SENTINEL_PORT:-}"
interval="${RELOAD_INTERVAL:-30}"
# redis-N's sentinel waits N times this after the renewal, then for its peers to answer (at most
# RELOAD_PEER_WAIT: a peer lost for good must not keep this one on a certificate that expires).
stagger="${RELOAD_STAGGER:-60}"
peer_wait="${RELOAD_PEER_WAIT:-600}"

log() { echo "reload-tls: $*"; }

# Interruptible, so that the pod stops at once (sh, as pid 1, would wait for a foreground sleep).
pause() {
  sleep "$1" &
  wait $!
}
trap 'exit 0' TERM INT

# To this pod's own Redis only, over the pod's loopback, where nothing outside the pod can
# listen. Not verified: when the authority itself is renewed, the server still presents a
# certificate of the previous one, which the new ca.crt cannot verify, and must be reached to
# load the new files.
local_redis() {
  port="$1"
  shift
  redis-cli --no-auth-warning -a "${REDIS_PASSWORD}" --tls --insecure \
    -h 127.0.0.1 -p "${port}" "$@"
}

fingerprint() {
  cat "${tls}/tls.crt" "${tls}/tls.key" "${tls}/ca.crt" | sha256sum
}

# Whether every other sentinel this one knows answers it (its flags are "sentinel" alone, not
# "disconnected" or "s_down").
peers_up() {
  peers="$(local_redis "${sentinel_port}" sentinel sentinels paraphe 2>&1)" || return 1
  case "${peers}" in ERR* | NOAUTH* | WRONGPASS* | LOADING* | "Could not connect"*) return 1 ;; esac
  printf '%s\n' "${peers}" |
    awk 'previous == "flags" && $0 != "sentinel" { down = 1 } { previous = $0 } END { exit down }'
}

restart_sentinel() {
  ordinal="$(hostname)"
  ordinal="${ordinal##*-}"
  case "${ordinal}" in '' | *[!0-9]*) ordinal=0 ;; esac
  pause $((ordinal * stagger))
  deadline=$(($(date +%s) + peer_wait))
  until peers_up; do
    if [ "$(date +%s)" -ge "${deadline}" ]; then
      log "other sentinels still down after ${peer_wait}s: restarting this one all the same"
      break
    fi
    pause "${interval}"
  done
  # A sentinel that does not answer is down or starting: it reads the new files when it starts.
  local_redis "${sentinel_port}" shutdown > /dev/null 2>&1 || true
  log "sentinel asked to shut down, the kubelet starts it again on the new certificate"
}

last="$(fingerprint)"
log "watching ${tls} every ${interval}s"
while :; do
  pause "${interval}"
  current="$(fingerprint)"
  [ "${current}" = "${last}" ] && continue
  # The three at once: the server checks that the key matches the certificate before taking
  # any; refused, it keeps the files it has, and this tries again at the next look.
  reply="$(local_redis "${server_port}" config set tls-cert-file "${tls}/tls.crt" \
    tls-key-file "${tls}/tls.key" tls-ca-cert-file "${tls}/ca.crt" 2>&1)"
  if [ "${reply}" != "OK" ]; then
    log "redis-server did not reload the certificate (${reply}), trying again in ${interval}s"
    continue
  fi
  last="${current}"
  log "redis-server reloaded the certificate"
  if [ -n "${sentinel_port}" ]; then
    restart_sentinel
  fi
done
