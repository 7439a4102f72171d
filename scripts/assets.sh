#!/usr/bin/env bash
# Install the pinned front-end packages (package-lock.json) and copy what the pages load into static/vendor/.
# Nothing is loaded from a CDN at run time: customers' intranets often have no internet.
set -euo pipefail
cd "$(dirname "$0")/.."

npm ci --no-audit --no-fund --loglevel=error
vendor=pharmacrm/static/vendor
mkdir -p "$vendor/echarts"
cp node_modules/echarts/dist/echarts.min.js "$vendor/echarts/echarts.min.js"
cp node_modules/echarts/LICENSE "$vendor/echarts/LICENSE"
echo "Front-end assets copied into $vendor/"
