#!/bin/sh
# The Vault side of examples/futures-bot.values.yaml, run once by a Vault operator with
# VAULT_ADDR and an admin token set. Works the same with OpenBao (replace `vault` by `bao`).
set -eu

NAMESPACE=trading              # the namespace the chart is installed in
SERVICE_ACCOUNT=futures-bot    # serviceAccount.name
ROLE=futures-bot               # vault.role
AUDIENCE=vault                 # vault.audience (the projected token's audience)

# 1. Kubernetes auth (skip if enabled). With Vault running in the cluster it reviews tokens with
#    its own service account; a Vault outside the cluster also needs token_reviewer_jwt and
#    kubernetes_ca_cert here.
vault auth enable kubernetes
vault write auth/kubernetes/config kubernetes_host="https://kubernetes.default.svc:443"

# 2. The key, in KV v2 at secret/gate/futures-bot. The secret is read from stdin so it stays out
#    of shell history and process lists.
vault secrets enable -path=secret kv-v2 || true
printf 'Gate.io API secret: ' && vault kv put secret/gate/futures-bot key="$GATE_API_KEY" secret=-

# 3. The policy: read on secret/data/gate/futures-bot and secret/metadata/gate/futures-bot.
vault policy write gate-futures-bot "$(dirname "$0")/futures-bot.hcl"

# 4. The role: only this ServiceAccount in this namespace, only tokens minted for Vault.
vault write auth/kubernetes/role/"$ROLE" \
    bound_service_account_names="$SERVICE_ACCOUNT" \
    bound_service_account_namespaces="$NAMESPACE" \
    audience="$AUDIENCE" \
    token_policies=gate-futures-bot \
    token_ttl=1h \
    token_max_ttl=24h
