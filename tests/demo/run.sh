#!/usr/bin/env bash
# make demo: the whole deploy on an embedded default (local AWS emulator + local systemd test host).
set -euo pipefail
cd "$(dirname "$0")/../.."
export ANSIBLE_CALLBACKS_ENABLED=flora.deploy.fast_exit,ansible.posix.profile_tasks
exec .venv/bin/python -m tests.demo.full
