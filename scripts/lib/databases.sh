# Sourced by scripts/test and scripts/bench (bash): starts private
# PostgreSQL and MariaDB servers on 127.0.0.1 under "$work" (the caller
# makes that folder) and exports their addresses and credentials as
# PORTHOLE_TEST_*. The caller runs stop_databases when it is done.

db_pids=()
stop_databases() {
  [ -n "${pgbin:-}" ] && [ -d "$work/pg" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  for p in "${db_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# free_port prints a port nothing listens on now (the servers below bind it
# themselves; a clash makes them fail loudly, never silently).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgport=$(free_port)
echo "==> starting PostgreSQL ($pgbin) on 127.0.0.1:$pgport"
install -d -m 700 "$work/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$work/pg"
echo postgres-test > "$work/pgpass" && chmod 644 "$work/pgpass"
as_pg "$pgbin/initdb" -D "$work/pg" -A scram-sha-256 -U postgres --pwfile="$work/pgpass" >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -w -l "$work/pg/server.log" \
  -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
PGPASSWORD=postgres-test psql -qX -h 127.0.0.1 -p "$pgport" -U postgres -d postgres \
  -c "CREATE USER porthole PASSWORD 'porthole-test'" -c "CREATE DATABASE porthole OWNER porthole" >/dev/null

myport=$(free_port)
echo "==> starting MariaDB on 127.0.0.1:$myport"
install -d "$work/my"
myuser=$(id -un)
mariadb-install-db --no-defaults --user="$myuser" --datadir="$work/my/data" --auth-root-authentication-method=normal >/dev/null 2>&1
mariadbd --no-defaults --user="$myuser" --datadir="$work/my/data" --socket="$work/my/sock" \
  --port="$myport" --bind-address=127.0.0.1 --skip-name-resolve --log-error="$work/my/error.log" &
db_pids+=($!)
for _ in $(seq 1 100); do
  mariadb --no-defaults -uroot --socket="$work/my/sock" -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
mariadb --no-defaults -uroot --socket="$work/my/sock" -e "
  CREATE DATABASE porthole; CREATE USER 'porthole'@'%' IDENTIFIED BY 'porthole-test';
  GRANT ALL ON porthole.* TO 'porthole'@'%'; GRANT ALL ON porthole_slap.* TO 'porthole'@'%';"

export PORTHOLE_TEST_POSTGRES="127.0.0.1:$pgport" PORTHOLE_TEST_MYSQL="127.0.0.1:$myport"
export PORTHOLE_TEST_DB_USER=porthole PORTHOLE_TEST_DB_PASSWORD=porthole-test PORTHOLE_TEST_DB_NAME=porthole
