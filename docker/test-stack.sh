#!/usr/bin/env bash
# Build the images and run docker/compose.yaml for real, with podman and podman-compose, on a
# machine that can pull no image (CI): see docker/README.md, "What CI proves".
#
#   bash docker/test-stack.sh
#
# 1. Stand-in base images, built locally: a Debian rootfs (debootstrap), then
#    docker/test/base.Dockerfile (Python with the project's torch, in place of pytorch/pytorch)
#    and docker/test/postgres.Dockerfile (tagged postgres:17, in place of the official image).
# 2. docker/Dockerfile, unchanged, with only --build-arg BASE_IMAGE pointing at the stand-in.
# 3. docker/compose.yaml, unchanged, plus docker/test/compose.cpu.yaml (no GPUs here):
#    PostgreSQL healthy, then `create`, then 2 workers, then the dashboard, on a tiny MNIST study
#    read from a read-only data mount. One worker is killed mid-trial (podman kill): its trial
#    must be failed by the heartbeat and retried, and the restarted container must rejoin. The
#    study must reach its total with nothing RUNNING; the dashboard's API and `hpsearch status`
#    on the host (through the published PostgreSQL port) must show it.
# 4. A summary: image sizes, build times, time from `up` to the study's total.
# Exits non-zero if any check fails; the stack (containers, volumes, network) is always torn
# down. Needs: podman, runc, debootstrap, podman-compose (PODMAN_COMPOSE), and hpsearch on the
# host (the project's venv, for `status` and docker/test/stack_check.py).
# KEEP_IMAGES=1 reuses images built by an earlier run (for working on the stack itself).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

TRIALS="${STACK_TRIALS:-24}"
PROJECT=hpsearch-stack
PODMAN_COMPOSE="${PODMAN_COMPOSE:-podman-compose}"
ROOTFS_IMAGE=localhost/hpsearch-test/debian:bookworm
BASE_IMAGE=localhost/hpsearch-test/torch-base:2.14.1
APP_IMAGE=localhost/hpsearch:local      # compose.yaml's image: hpsearch:local
PG_IMAGE=docker.io/library/postgres:17  # compose.yaml's image: postgres:17
WORK="$(mktemp -d /tmp/hpsearch-stack.XXXXXX)"
STARTED=$SECONDS

for tool in podman debootstrap "$PODMAN_COMPOSE" hpsearch python; do
  command -v "$tool" >/dev/null || { echo "test-stack: $tool not found; see .ci/install-podman" >&2; exit 1; }
done

# The host's podman settings for this sandbox (docker/README.md): runc, cgroupfs, ulimits it may
# set. CONTAINERS_CONF reaches podman-compose's podman calls too.
cat > "$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF="$WORK/containers.conf"

PASSWORD="$(python -c 'import secrets; print(secrets.token_hex(16))')"
mask() { sed -e "s/$PASSWORD/***/g"; }  # no output shows the password
say() { echo "test-stack: $*"; }
fail() { echo "test-stack: FAIL: $*" >&2; exit 1; }
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PG_PORT="$(free_port)"
DASHBOARD_PORT="$(free_port)"

# ---------------------------------------------------------------- the stack's settings and data
mkdir -p "$WORK/data/MNIST"
cp -r tests/data/MNIST/raw "$WORK/data/MNIST/"
cp docker/test/stack-study.toml "$WORK/data/"
chmod -R a+rX "$WORK/data"
cat > "$WORK/stack.env" <<EOF
COMPOSE_PROJECT_NAME=$PROJECT
POSTGRES_USER=hpsearch
POSTGRES_PASSWORD=$PASSWORD
POSTGRES_DB=hpsearch
POSTGRES_BIND=127.0.0.1
POSTGRES_PORT=$PG_PORT
STUDY=/data/stack-study.toml
TRIALS=$TRIALS
HOST_DATA_DIR=$WORK/data
DASHBOARD_PORT=$DASHBOARD_PORT
EOF
export HPSEARCH_STORAGE="postgresql+psycopg://hpsearch:$PASSWORD@127.0.0.1:$PG_PORT/hpsearch"
STUDY_NAME=stack-study
compose() {
  "$PODMAN_COMPOSE" --project-name "$PROJECT" --env-file "$WORK/stack.env" \
    -f docker/compose.yaml -f docker/test/compose.cpu.yaml "$@" > "$WORK/compose.log" 2>&1 \
    || { mask < "$WORK/compose.log" | tail -20 >&2; fail "podman-compose $*"; }
}
container() {  # the name of a service's container (its first, or number $2)
  podman ps -a --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort | sed -n "${2:-1}p"
}
teardown() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    for service in postgres create worker dashboard; do
      for name in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" \
          --filter "label=com.docker.compose.service=$service" --format '{{.Names}}'); do
        echo "--- last lines of $name" >&2
        podman logs --tail 15 "$name" 2>&1 | mask >&2 || true
      done
    done
  fi
  "$PODMAN_COMPOSE" --project-name "$PROJECT" --env-file "$WORK/stack.env" \
    -f docker/compose.yaml -f docker/test/compose.cpu.yaml down -v -t 5 >/dev/null 2>&1 || true
  local label="label=com.docker.compose.project=$PROJECT"
  podman ps -aq --filter "$label" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "$label" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  podman network ls -q --filter "$label" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$status"
}
trap teardown EXIT

# ---------------------------------------------------------------- 1-2. images
have() { [ "${KEEP_IMAGES:-0}" = 1 ] && podman image exists "$1"; }
build() {  # build ARGS...: podman build, its log kept for a failure
  podman build "$@" > "$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log" >&2; fail "podman build $*"; }
}
t0=$SECONDS
if ! have "$ROOTFS_IMAGE"; then
  # minbase plus Python; the machine's extra CA certificates (its egress proxy's) go in too, so
  # pip inside a build can reach PyPI as the host does.
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian > "$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap"; }
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/"
    chroot "$WORK/rootfs" update-ca-certificates >/dev/null
  fi
  tar -C "$WORK/rootfs" -c . | podman import - "$ROOTFS_IMAGE" >/dev/null 2>&1
  rm -rf "$WORK/rootfs"
fi
t_rootfs=$((SECONDS - t0))

# torch comes from where the host's pip finds it (its find-links and file:// indexes, mounted
# read-only), the same files `pip install torch==2.14.1` takes on the host.
pip_sources=()
mounts=()
links="$(python -m pip config get global.find-links 2>/dev/null || true)"
indexes="$(python -m pip config get global.extra-index-url 2>/dev/null || true)"
for path in $links ${indexes//file:\/\//}; do
  root="${path%/simple}"
  [ -d "$root" ] && mounts+=(--volume "$root:$root:ro")
done
pip_sources=(--build-arg "PIP_FIND_LINKS=$links" --build-arg "PIP_EXTRA_INDEX_URL=$indexes")
t0=$SECONDS
have "$BASE_IMAGE" || build "${mounts[@]}" "${pip_sources[@]}" \
  --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" -f docker/test/base.Dockerfile -t "$BASE_IMAGE" docker/test
t_base=$((SECONDS - t0))
t0=$SECONDS
have "$PG_IMAGE" || build --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" \
  -f docker/test/postgres.Dockerfile -t "$PG_IMAGE" docker/test
t_pg=$((SECONDS - t0))
t0=$SECONDS
build --build-arg "BASE_IMAGE=$BASE_IMAGE" -f docker/Dockerfile -t "$APP_IMAGE" "$REPO"
t_app=$((SECONDS - t0))
say "images built (rootfs ${t_rootfs}s, torch base ${t_base}s, postgres ${t_pg}s, hpsearch ${t_app}s)"

# ---------------------------------------------------------------- 3. the stack
up_at=$SECONDS
compose up -d --no-build postgres
pg="$(container postgres)"
for _ in $(seq 60); do
  podman healthcheck run "$pg" >/dev/null 2>&1 && break  # podman 4.3 runs no timers here
  sleep 1
done
podman healthcheck run "$pg" >/dev/null 2>&1 || fail "postgres never became healthy"
say "postgres healthy after $((SECONDS - up_at))s"

compose up -d --no-build --no-deps create
created="$(podman wait "$(container create)")"
[ "$created" = 0 ] || fail "create exited $created"
say "study created: $TRIALS trials"

compose up -d --no-build --no-deps --scale worker=2 worker
compose up -d --no-build --no-deps dashboard
[ "$(podman ps --filter "label=com.docker.compose.project=$PROJECT" \
  --filter label=com.docker.compose.service=worker -q | wc -l)" = 2 ] || fail "2 workers are not running"

counts() { python docker/test/stack_check.py counts "$STUDY_NAME"; }
# Kill worker 1 in the middle of a trial once a few have finished.
victim="$(container worker 1)"
host="$(podman inspect -f '{{.Config.Hostname}}' "$victim")"
# Its trial is the one still RUNNING on its host after the kill (read before the kill, it may
# have completed in between); a kill that lands between two trials is retried.
killed=""
for _ in $(seq 240); do
  read -r finished running _ _ <<< "$(counts)"
  if [ "$finished" -ge 3 ] && [ -n "$(python docker/test/stack_check.py running "$STUDY_NAME" "$host")" ]; then
    kill_time="$(date +%s.%N)"
    podman kill "$victim" >/dev/null
    killed="$(python docker/test/stack_check.py running "$STUDY_NAME" "$host")"
    [ -n "$killed" ] && break
    podman start "$victim" >/dev/null
  fi
  sleep 0.5
done
[ -n "$killed" ] || fail "worker $victim never ran a trial"
say "killed $victim (host $host) in trial #$killed, with $finished finished"

# Its trial is failed by the heartbeat and retried by the other worker. `podman kill`, like
# `docker kill`, is a manual stop, to which restart policies do not apply: the container is
# started again as an operator would, and must rejoin.
sleep 2
podman start "$victim" >/dev/null

# Until the total, with nothing RUNNING: the workers exit 0 then.
for _ in $(seq 600); do
  read -r finished running failed waiting <<< "$(counts)"
  [ "$finished" -ge "$TRIALS" ] && [ "$running" = 0 ] && [ "$waiting" = 0 ] && break
  sleep 1
done
total_at=$((SECONDS - up_at))
say "study at its total: $finished finished, $running running, $failed failed, after ${total_at}s from up"
for n in 1 2; do
  code="$(timeout 120 podman wait "$(container worker "$n")")" || fail "worker $n did not exit"
  [ "$code" = 0 ] || fail "worker $n exited $code"
done
python docker/test/stack_check.py verify "$STUDY_NAME" "$TRIALS" $killed || fail "end state"
rejoined="$(python docker/test/stack_check.py ran-since "$STUDY_NAME" "$host" "$kill_time")"
[ -n "$rejoined" ] || fail "the restarted worker ran no trial"
say "killed trial #$killed failed and retried; the restarted worker ran trials $rejoined"

# The dashboard's API lists the study; `hpsearch status` on the host reads it through the port.
dashboard=""
for _ in $(seq 60); do
  dashboard="$(python - "$DASHBOARD_PORT" <<'EOF' || true
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/studies", timeout=5) as reply:
    print(reply.read().decode())
EOF
)"
  [ -n "$dashboard" ] && break
  sleep 1
done
grep -q "\"$STUDY_NAME\"" <<< "$dashboard" || fail "the dashboard's /api/studies does not list $STUDY_NAME"
say "dashboard on 127.0.0.1:$DASHBOARD_PORT lists $STUDY_NAME"
status="$(hpsearch status --study "$WORK/data/stack-study.toml" 2>&1 | mask)" \
  || { echo "$status" >&2; fail "hpsearch status on the host"; }
grep -q "$STUDY_NAME: $TRIALS/$TRIALS finished" <<< "$status" || { echo "$status" >&2; fail "status does not show the total"; }
say "hpsearch status on the host: $(head -1 <<< "$status")"

# ---------------------------------------------------------------- 4. summary
size() { podman image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.2f GB", $1 / 1e9 }'; }
say "summary"
say "  images: torch base $(size "$BASE_IMAGE"), hpsearch $(size "$APP_IMAGE"), postgres $(size "$PG_IMAGE")"
say "  build: rootfs ${t_rootfs}s, torch base ${t_base}s, postgres ${t_pg}s, hpsearch ${t_app}s"
say "  up to the study's total ($TRIALS trials, 2 workers, one killed): ${total_at}s"
say "  whole check: $((SECONDS - STARTED))s"
say "PASS"
