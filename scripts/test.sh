#!/usr/bin/env bash
# Command 2: install (if needed) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
ruff check plugins dags tests
ruff format --check plugins dags tests
python -m pytest "$@"
