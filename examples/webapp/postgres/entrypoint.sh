#!/bin/bash
# First start on an empty volume: initdb with POSTGRES_USER as the superuser
# (password POSTGRES_PASSWORD), a database POSTGRES_DB, and password logins
# from the network. Nothing listens until that is done, so pg_isready only
# succeeds against a ready server.
set -euo pipefail
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [[ ! -s $PGDATA/PG_VERSION ]]; then
	[[ -n ${POSTGRES_PASSWORD:-} ]] || { echo "entrypoint: set POSTGRES_PASSWORD" >&2; exit 1; }
	echo "entrypoint: initialising $PGDATA"
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	if [[ $POSTGRES_DB != postgres ]]; then
		echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\"" |
			postgres --single -D "$PGDATA" postgres >/dev/null
	fi
fi
exec "$@"
