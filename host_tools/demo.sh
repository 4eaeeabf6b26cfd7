#!/usr/bin/env bash
# The main demo (`make demo`): the example model through splitsdk's stages, outputs under $1.
set -euo pipefail
out=${1:-out/demo}
here=$(cd "$(dirname "$0")/.." && pwd)
PY="$here/.venv/bin/python"
SPLITSDK="$here/.venv/bin/splitsdk"
mkdir -p "$out"

echo "== 1. the example model (a YOLO-like camera backbone, deterministic random weights)"
"$PY" -m splitsdk.examples.camera_net "$out/model.keras"

echo "== 2. inspect: split candidates on the Cortex-A7 camera profile"
"$SPLITSDK" inspect "$out/model.keras" --target cortex-a7 --plot "$out/splits.png"

echo "== 3. plan: AUTO-SPLIT for a 3 Mbit/s camera"
"$SPLITSDK" plan "$out/model.keras" --target cortex-a7 --uplink 3mbit -o "$out/plan.json"
echo "== 4. report"
"$SPLITSDK" report "$out/plan.json" -o "$out/report"
echo "== 5. convert: int8 edge TFLite + cloud model, verified on the host"
"$SPLITSDK" convert "$out/plan.json" --model "$out/model.keras" -o "$out/bundle"
echo "demo outputs in $out"
