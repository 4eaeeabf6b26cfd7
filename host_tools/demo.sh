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
echo "== 6. generate: the C++ edge app (CMake project) for the Cortex-A7 camera"
"$SPLITSDK" generate --target cortex-a7 --bundle "$out/bundle" -o "$out/edge-app"
echo "== 7. build: cross-compile against the armhf sysroot into a firmware directory"
"$SPLITSDK" build "$out/edge-app" -o "$out/firmware"
echo "== 8. emulate: the ARM binary under qemu-arm, sending to a local receiver"
"$PY" -c 'import sys, json, numpy as np; from pathlib import Path
h, w, c = json.load(open(sys.argv[1]))["input"]["shape"]; d = Path(sys.argv[2]); d.mkdir(exist_ok=True)
for i, px in enumerate(np.random.default_rng(0).integers(0, 256, (3, h, w, c), dtype=np.uint8)):
    (d / f"frame{i}.ppm").write_bytes(b"P6 %d %d 255\n" % (w, h) + px.tobytes())' "$out/bundle/manifest.json" "$out/frames"
"$SPLITSDK" emulate "$out/firmware" --bundle "$out/bundle" --frames "$out/frames"
echo "demo outputs in $out"
