#!/usr/bin/env bash
# Creates Azure Web PubSub for Socket.IO and Azure Cache for Redis, and prints the values the sync
# server needs (see README.md here). UNTESTED against Azure from this project's machines: read it first.
#   RG=sync-rg LOC=westeurope WPS=my-sync-wps REDIS=my-sync-redis bash deploy/azure/deploy.sh
set -euo pipefail
: "${RG:?resource group}" "${LOC:?location}" "${WPS:?Web PubSub name}" "${REDIS:?Redis name}"
HUB="${HUB:-sync}"
az group create -n "$RG" -l "$LOC" -o none
az extension add --upgrade --name webpubsub -o none
az webpubsub create -g "$RG" -n "$WPS" -l "$LOC" --kind SocketIO --sku "${WPS_SKU:-Standard_S1}" -o none
az redis create -g "$RG" -n "$REDIS" -l "$LOC" --sku Standard --vm-size c1 -o none
WPS_CONN="$(az webpubsub key show -g "$RG" -n "$WPS" --query primaryConnectionString -o tsv)"
REDIS_KEY="$(az redis list-keys -g "$RG" -n "$REDIS" --query primaryKey -o tsv)"
cat <<OUT
Created. Put these in the Secret of the Helm chart (never in values) or in your .env:
  WEB_PUBSUB_CONNECTION_STRING=<hidden: az webpubsub key show -g $RG -n $WPS --query primaryConnectionString -o tsv>
  WEB_PUBSUB_HUB_NAME=$HUB
  REDIS_URL=rediss://:<key>@$REDIS.redis.cache.windows.net:6380
OUT
# the secrets go to files only readable by you, not to the terminal
umask 077
printf '%s' "$WPS_CONN" > "./$WPS.connection-string"
printf 'rediss://:%s@%s.redis.cache.windows.net:6380' "$REDIS_KEY" "$REDIS" > "./$REDIS.redis-url"
echo "Written: ./$WPS.connection-string and ./$REDIS.redis-url (mode 600)"
