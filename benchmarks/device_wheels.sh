#!/usr/bin/env bash
# Wheels of what tdml needs and the GPU machine's image lacks (mlflow-skinny, optuna, plotly,
# SQLAlchemy, alembic and their own needs), for its Python 3.12, into .whl/ (git-excluded):
# that machine reaches no package registry, so they travel with the working tree (docs/device.md).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl \
  "mlflow-skinny>=3.0,<4" "optuna>=4.9,<6" "plotly>=5.20,<8" "sqlalchemy>=2.0,<3" alembic
# already in the image (docs/device.md): keep its builds
IMAGE="numpy pandas pyyaml packaging urllib3 requests certifi charset_normalizer idna click tqdm protobuf
jinja2 markupsafe cloudpickle scikit_learn scipy joblib threadpoolctl pyarrow typing_extensions attrs anyio
h11 httpx httpcore python_dateutil six narwhals psutil filelock fsspec sympy mpmath networkx colorama rich
pygments markdown_it_py mdurl werkzeug zipp"
for name in $IMAGE; do rm -f .whl/"$name"-[0-9]*.whl; done
du -sh .whl && ls .whl | wc -l
