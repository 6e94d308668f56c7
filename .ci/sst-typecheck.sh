#!/usr/bin/env bash
# Type-checks sst.config.ts and infra/ against SST's platform with the project's own tsc. `sst install`
# cannot download its engine here, so the shared tool lays out .sst/platform offline first.
# Run from the repository's root, with the shared folder beside the clone (../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
../shared/tools/sst-offline-install
npm run typecheck:infra
