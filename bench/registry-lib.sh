# Shared by the bench scripts that need a registry: start_registry DIR
# starts Debian's docker-registry on the next free port from $next_port
# (set PORT first) and sets $reg; stop_registry stops it. Needs
# $DOCKER_REGISTRY and curl.
next_port=${PORT:-5310}
registry_pid=
stop_registry() {
    if [[ -n $registry_pid ]]; then
        kill "$registry_pid" 2>/dev/null || true
        wait "$registry_pid" 2>/dev/null || true
        registry_pid=
    fi
}

start_registry() {
    local storage=$1 port=$next_port
    next_port=$((next_port + 1))
    mkdir -p "$storage"
    cat >"$storage.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    # The registry reads REGISTRY_* variables as configuration overrides;
    # keep skopeo's REGISTRY_AUTH_FILE away from it.
    env -u REGISTRY_AUTH_FILE "$DOCKER_REGISTRY" serve "$storage.yml" >"$storage.log" 2>&1 &
    registry_pid=$!
    reg=127.0.0.1:$port
    for _ in $(seq 100); do
        if curl -fs -o /dev/null "http://$reg/v2/" 2>/dev/null; then return 0; fi
        kill -0 "$registry_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "registry on $reg did not start:" >&2
    cat "$storage.log" >&2
    exit 1
}

