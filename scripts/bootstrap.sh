# Sourced by demo.sh and test.sh: create .venv and install the project into it (only when pyproject.toml changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.pupilshare-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "==> installing pupilshare and its pinned dependencies into .venv (a few minutes the first time)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    .venv/bin/python - <<'PY'
import great_expectations, airflow, dbt.version
gx = great_expectations.__version__
if not gx.startswith("1."):
    raise SystemExit(f"Great Expectations resolved to {gx}, not 1.x: check the pins in pyproject.toml")
print(f"    Airflow {airflow.__version__}, dbt {dbt.version.__version__}, Great Expectations {gx}")
PY
    touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
