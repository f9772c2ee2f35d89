#!/bin/sh
# Run once by Patroni on the node that creates the cluster (its argument: a superuser
# connection string): the service's login and database.
set -eu
psql "$1" -v ON_ERROR_STOP=1 -q -v user="$POSTGRES_USER" -v pw="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
SQL
psql "$1" -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\""
