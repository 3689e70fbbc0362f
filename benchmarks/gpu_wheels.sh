#!/usr/bin/env bash
# Fill .whl/ with the wheels a bare GPU machine lacks (torch and Lightning it has), at the
# versions `make install` put in .venv, for that machine's Python (default 3.12, what the
# lent H200 had). gpu_check.sh installs whatever is in .whl/ into a scratch folder.
# Pure-Python packages come as py3 wheels; cffi, cryptography, pydantic-core and SQLAlchemy
# need the target's ABI. antlr4-python3-runtime 4.9.3 exists only as an sdist: built here.
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]   # ~20 MB, from pip's configured index
set -euo pipefail

PYV=${1:-3.12}
ABI=cp${PYV/./}
PIP=${PIP:-.venv/bin/pip}
PACKAGES=(alembic annotated-doc annotated-types cachetools cffi cryptography databricks-sdk
    fastapi google-auth hydra-core importlib-metadata mako mlflow-skinny mlflow-tracing omegaconf
    opentelemetry-api opentelemetry-proto opentelemetry-sdk opentelemetry-semantic-conventions
    pycparser pydantic pydantic-core sqlalchemy sqlparse starlette typing-inspection)

pinned=()
for name in "${PACKAGES[@]}"; do
    version=$("$PIP" show "$name" 2>/dev/null | awk '/^Version:/{print $2}')
    [[ -n $version ]] || { echo "gpu_wheels: $name is not in .venv; run make install" >&2; exit 1; }
    pinned+=("$name==$version")
done
antlr=$("$PIP" show antlr4-python3-runtime | awk '/^Version:/{print $2}')

rm -rf .whl && mkdir -p .whl
"$PIP" download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --abi "$ABI" --abi abi3 --abi none --platform manylinux_2_28_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    -d .whl "${pinned[@]}" 2>&1 | grep -v "is ignored" || true
"$PIP" wheel -q --no-deps -w .whl "antlr4-python3-runtime==$antlr" 2>&1 | grep -v "is ignored" || true
count=$(ls .whl/*.whl | wc -l)
[[ $count -eq $((${#PACKAGES[@]} + 1)) ]] || { echo "gpu_wheels: got $count wheels" >&2; exit 1; }
echo "$count wheels for Python $PYV in .whl/ ($(du -sh .whl | cut -f1))"
