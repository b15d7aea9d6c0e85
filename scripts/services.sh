# Sourced by scripts/dev, scripts/test and .ci/run: make sure Postgres (15+)
# and Redis (7+) answer on 127.0.0.1, installing them with apt on a fresh
# Debian/Ubuntu machine, and starting them when they are installed but down.
# Postgres is set to trust local TCP connections as user postgres, as the
# defaults (config/base.yaml) and the tests expect.

log() { echo "== $*"; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || {
    echo "cannot install $*: no apt-get here; install Postgres 15+ and Redis 7+ yourself" >&2
    exit 1
  }
  if [ -z "${APT_UPDATED:-}" ]; then sudo_if_needed apt-get update -qq; APT_UPDATED=1; fi
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

pg_up() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  if pg_up; then log "postgres: running"; return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "postgres: installing"
    apt_install postgresql
  fi
  local ver hba
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! sudo_if_needed grep -q "bizcontacts-local" "$hba"; then
    sudo_if_needed sed -i '1i host all all 127.0.0.1/32 trust # bizcontacts-local\nhost all all ::1/128 trust # bizcontacts-local\nlocal all postgres trust # bizcontacts-local' "$hba"
  fi
  log "postgres: starting cluster $ver"
  sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null \
    || sudo_if_needed pg_ctlcluster --skip-systemctl-redirect "$ver" main reload
  for _ in $(seq 1 60); do pg_up && break; sleep 1; done
  pg_up || { echo "postgres did not come up" >&2; exit 1; }
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then log "redis: running"; return; fi
  command -v redis-server >/dev/null 2>&1 || { log "redis: installing"; apt_install redis-server; }
  sudo_if_needed mkdir -p /var/lib/redis /var/log/redis
  log "redis: starting"
  sudo_if_needed redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/bizcontacts.log
  for _ in $(seq 1 30); do redis-cli ping >/dev/null 2>&1 && break; sleep 1; done
  redis-cli ping >/dev/null
}

# The admin dashboard's browser tests drive Debian's headless chromium
# through chromedriver (tests/it/admin_browser.rs).
ensure_browser() {
  if command -v chromedriver >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1; then
    log "chromium + chromedriver: present"; return
  fi
  log "chromium + chromedriver: installing"
  apt_install chromium chromium-driver
}

ensure_services() {
  ensure_postgres
  ensure_redis
}

# Builds go outside the clone, so a fresh clone starts clean and several
# clones share one cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/bizcontacts-target}"
