#!/usr/bin/env bash
# Docker engine and database images for the integration suite, for CI and
# developers alike. No container registry is needed: the PostgreSQL 15 and
# MariaDB 10.11 images are built from Debian bookworm's own packages with
# debootstrap and `docker import`, and built only when `docker image inspect`
# does not find them already.
#
#   scripts/test-images.sh           # engine up (installing it if missing), images built or reused
#   scripts/test-images.sh --rebuild # build both images again
#
# Afterwards, point the suite at them (the script prints these lines):
#   export EVENTFOLD_TEST_POSTGRES_IMAGE=eventfold-test/postgres:15
#   export EVENTFOLD_TEST_MYSQL_IMAGE=eventfold-test/mariadb:10.11
#
# The images accept what the official postgres/mariadb images are given by
# internal/testdb (PostgreSQL: user postgres, any password (trust);
# MariaDB: root/eventfold from any host), and trade durability for speed
# (fsync=off, innodb_flush_log_at_trx_commit=2): they are test fixtures.
# Needs root (apt-get, dockerd, debootstrap, chroot).
set -euo pipefail

PG_IMAGE=${EVENTFOLD_TEST_POSTGRES_IMAGE:-eventfold-test/postgres:15}
MY_IMAGE=${EVENTFOLD_TEST_MYSQL_IMAGE:-eventfold-test/mariadb:10.11}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rebuild=false
[ "${1:-}" = --rebuild ] && rebuild=true

log() { printf '[test-images] %s\n' "$*"; }

engine() {
  if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing docker.io and debootstrap from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  if docker info >/dev/null 2>&1; then
    log "Docker engine answers"
    return
  fi
  log "starting dockerd (log: /var/log/eventfold-dockerd.log)"
  nohup dockerd >/var/log/eventfold-dockerd.log 2>&1 </dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { log "Docker engine answers"; return; }
    sleep 1
  done
  log "dockerd did not answer within 60s; see /var/log/eventfold-dockerd.log"
  exit 1
}

# rootfs PACKAGE DIR: a minimal bookworm with PACKAGE installed. Services are
# kept from starting inside the chroot (policy-rc.d), so nothing built here
# ever binds a port of this machine.
rootfs() {
  local pkg=$1 dir=$2
  mkdir -p "$dir/usr/sbin"
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod +x "$dir/usr/sbin/policy-rc.d"
  debootstrap --variant=minbase --include="$pkg" "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
    { tail -20 "$dir.log"; exit 1; }
  stray "$dir"
}

# stray DIR: stop any process a package script left running inside DIR.
stray() {
  local dir pid
  dir=$(readlink -f "$1")
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$dir" ] && { log "stopping stray $pid in $dir"; kill "$pid" || true; }
  done
  return 0
}

# finish DIR IMAGE CMD: slim DIR down and import it as IMAGE.
finish() {
  local dir=$1 image=$2 cmd=$3
  rm -f "$dir/usr/sbin/policy-rc.d"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc "$dir"/usr/share/man
  tar --numeric-owner -C "$dir" -c . |
    docker import -c "CMD [\"$cmd\"]" -c 'LABEL org.eventfold.image=test' - "$image" >/dev/null
  log "built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
}

build_postgres() {
  local dir=$1/postgres
  log "building $PG_IMAGE from Debian $SUITE's postgresql (debootstrap, about a minute)"
  rootfs postgresql "$dir"
  chroot "$dir" /bin/sh -ec '
    rm -rf /var/lib/postgresql/data
    install -d -o postgres -g postgres /var/lib/postgresql/data /run/postgresql
    setpriv --reuid=postgres --regid=postgres --init-groups \
      /usr/lib/postgresql/15/bin/initdb -D /var/lib/postgresql/data -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>/var/lib/postgresql/data/postgresql.conf <<EOC
listen_addresses = '"'"'*'"'"'
port = 5432
unix_socket_directories = '"'"'/run/postgresql'"'"'
fsync = off
full_page_writes = off
EOC
    printf "host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n" >>/var/lib/postgresql/data/pg_hba.conf
    cat >/usr/local/bin/eventfold-start <<EOC
#!/bin/sh
install -d -o postgres -g postgres /run/postgresql
exec setpriv --reuid=postgres --regid=postgres --init-groups /usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/data
EOC
    chmod +x /usr/local/bin/eventfold-start'
  finish "$dir" "$PG_IMAGE" /usr/local/bin/eventfold-start
}

build_mariadb() {
  local dir=$1/mariadb
  log "building $MY_IMAGE from Debian $SUITE's mariadb-server (debootstrap, about a minute)"
  rootfs mariadb-server "$dir"
  chroot "$dir" /bin/sh -ec '
    # debootstrap writes no /etc/hosts; mariadb-install-db wants localhost.
    printf "127.0.0.1 localhost\n" >/etc/hosts
    rm -rf /var/lib/mysql && install -d -o mysql -g mysql /var/lib/mysql /run/mysqld
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --skip-name-resolve \
      --auth-root-authentication-method=normal >/dev/null
    # --bootstrap runs SQL without opening any port; FLUSH loads the grant tables.
    mariadbd --user=mysql --datadir=/var/lib/mysql --skip-name-resolve --bootstrap >/tmp/bootstrap.log 2>&1 <<EOS || { cat /tmp/bootstrap.log; exit 1; }
FLUSH PRIVILEGES;
ALTER USER root@localhost IDENTIFIED BY "eventfold";
CREATE USER root@"%" IDENTIFIED BY "eventfold";
GRANT ALL PRIVILEGES ON *.* TO root@"%" WITH GRANT OPTION;
EOS
    cat >/etc/mysql/mariadb.conf.d/99-eventfold.cnf <<EOC
[mariadbd]
bind-address = 0.0.0.0
port = 3306
skip-name-resolve
innodb_flush_log_at_trx_commit = 2
EOC
    cat >/usr/local/bin/eventfold-start <<EOC
#!/bin/sh
install -d -o mysql -g mysql /run/mysqld
exec mariadbd --user=mysql
EOC
    chmod +x /usr/local/bin/eventfold-start'
  finish "$dir" "$MY_IMAGE" /usr/local/bin/eventfold-start
}

engine
work=$(mktemp -d /var/tmp/eventfold-images.XXXXXX)
trap 'stray "$work/postgres" 2>/dev/null; stray "$work/mariadb" 2>/dev/null; rm -rf "$work"' EXIT
for pair in "$PG_IMAGE build_postgres" "$MY_IMAGE build_mariadb"; do
  set -- $pair
  if ! $rebuild && docker image inspect "$1" >/dev/null 2>&1; then
    log "reusing $1 (built $(docker image inspect -f '{{.Created}}' "$1"))"
  else
    start=$SECONDS
    "$2" "$work"
    log "$1 took $((SECONDS - start))s"
  fi
done
echo "export EVENTFOLD_TEST_POSTGRES_IMAGE=$PG_IMAGE EVENTFOLD_TEST_MYSQL_IMAGE=$MY_IMAGE"
