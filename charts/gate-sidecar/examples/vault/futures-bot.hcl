# Vault policy "gate-futures-bot": what gate-sidecar needs for the futures-bot key, nothing more.
#
# The key is a KV v2 secret at secret/gate/futures-bot with the fields key and secret. The sidecar
# polls the metadata (current_version, deletion) every refresh interval and reads the data only
# when the version changes. No list, no write, no other path: rotating the key is an operator's
# `vault kv put`, pulling it is `vault kv delete` (the sidecar then answers 503).
#
# Token renewal and lookup-self come from Vault's built-in "default" policy, which Kubernetes
# auth attaches to the token unless the role sets token_no_default_policy.

path "secret/data/gate/futures-bot" {
  capabilities = ["read"]
}

path "secret/metadata/gate/futures-bot" {
  capabilities = ["read"]
}
