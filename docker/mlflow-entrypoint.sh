#!/bin/sh
# The MLflow tracking server with basic auth. auth.ini is written here from the environment (the
# admin password stays in the environment) so that no secret is baked into the image or committed (MLflow reads MLFLOW_AUTH_CONFIG_PATH).
set -eu
: "${MLFLOW_ADMIN_PASSWORD:?set it in .env (MLflow refuses an admin password under 12 characters)}"
AUTH_INI=/tmp/auth.ini
cat > "$AUTH_INI" <<INI
[mlflow]
# EDIT lets every user write to the shared tdml experiments and registered models; with READ a
# second user gets 403 on its first run (grant per experiment/model instead, see docs/deployment.md)
default_permission = ${MLFLOW_DEFAULT_PERMISSION:-EDIT}
database_uri = postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/mlflow_auth
admin_username = ${MLFLOW_ADMIN_USERNAME:-admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Every request is checked against a scrypt hash (~0.2 s of server CPU each; a trial makes
# ~40 requests): cache a verified credential this long. A password change reaches the other
# server workers only when it expires (docs/deployment.md); 0 = verify every request.
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
INI
export MLFLOW_AUTH_CONFIG_PATH="$AUTH_INI"
export MLFLOW_AUTH_ADMIN_PASSWORD="$MLFLOW_ADMIN_PASSWORD"  # used once, to create the admin user
exec mlflow server \
  --backend-store-uri "postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/mlflow" \
  --artifacts-destination "s3://${TDML_ARTIFACT_BUCKET:-tdml-artifacts}" --serve-artifacts \
  --app-name basic-auth --host 0.0.0.0 --port 5000 --workers "${MLFLOW_WORKERS:-2}"
