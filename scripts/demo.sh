#!/usr/bin/env bash
# Command 1: from nothing to a delivered, gated, recorded feed. Installs, makes sample data, runs the DAGs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
export PUPILSHARE_DATA_DIR="${PUPILSHARE_DATA_DIR:-$ROOT/data}"
SAMPLE="$PUPILSHARE_DATA_DIR/inbox/census/sample_autumn_2026"
if [ ! -d "$PUPILSHARE_DATA_DIR/archive/census" ] && [ ! -d "$SAMPLE" ]; then
    echo "==> generating a synthetic county: a School Census extract and every other return, in $PUPILSHARE_DATA_DIR/inbox"
    pupilshare generate --out "$SAMPLE" --returns-inbox "$PUPILSHARE_DATA_DIR/inbox" \
        --schools "${PUPILSHARE_DEMO_SCHOOLS:-30}" --pupils "${PUPILSHARE_DEMO_PUPILS:-6000}" --seed 1
fi
echo "==> running the pipeline (Airflow DAGs in process)"
pupilshare run "$@"
