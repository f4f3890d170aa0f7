#!/usr/bin/env bash
# make demo: a local AWS (moto server), the Flora parameters and a site in it, then the deploy twice:
# the first run does the work, the second shows the no-op.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
PORT="${FLORA_DEMO_PORT:-5055}"
STATE=.cache/demo
mkdir -p "$STATE"
rm -f "$STATE/backend.env"  # each demo starts from a fresh host state

endpoint=$($PY -m tests.support.localaws start --port "$PORT" --state-dir "$STATE")
trap '$PY -m tests.support.localaws stop --state-dir "$STATE"' EXIT
echo "Local AWS (moto server): $endpoint"
$PY -m tests.support.localaws seed --endpoint-url "$endpoint" > "$STATE/seed.json"
echo "Seeded: $($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["parameters"]), "parameters, bucket", d["bucket"], "distribution", d["distribution_id"])' "$STATE/seed.json")"

export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_DEFAULT_REGION=ap-southeast-2 AWS_EC2_METADATA_DISABLED=true \
  ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks
for run in first second; do
  echo "=== Deploy ($run run) ==="
  .venv/bin/ansible-playbook tests/demo/demo.yml
done
echo "Env file keys (values stay in the file, mode $(stat -c %a "$STATE/backend.env")):"
cut -d= -f1 "$STATE/backend.env" | tr '\n' ' '; echo
