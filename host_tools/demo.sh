#!/usr/bin/env bash
# The main demo (`make demo`): the licence-plate case study (the paper's Table 3) through every splitsdk stage.
# Outputs under $1 (default out/demo). Environment: QEMU_FRAMES (test frames through qemu-arm, default 50),
# VAL_FRAMES (planner's validation set, default 500), TEST_FRAMES (host accuracy, default 1000), STEP_S (seconds per
# step of the adaptive bundle's 20 -> 1 -> 20 Mbit/s schedule, default 4).
set -euo pipefail
out=${1:-out/demo}
here=$(cd "$(dirname "$0")/.." && pwd)
PY="$here/.venv/bin/python"
SPLITSDK="$here/.venv/bin/splitsdk"
QEMU_FRAMES=${QEMU_FRAMES:-50}
VAL_FRAMES=${VAL_FRAMES:-500}
TEST_FRAMES=${TEST_FRAMES:-1000}
STEP_S=${STEP_S:-4}
export TF_CPP_MIN_LOG_LEVEL=3
start=$(date +%s)
mkdir -p "$out"
out=$(cd "$out" && pwd)
data="$out/data"
mkdir -p "$data"
weights="$here/sdk/examples/lpr/weights"
variants=(small)
if [[ -f "$weights/lpr_large.keras" ]]; then variants+=(large); else echo "note: no large-LSTM weights; that row stays empty"; fi

echo "== 1. data: synthetic 128x256 parking-lot frames (calibration from train, validation, test, PPM test frames)"
"$PY" -m splitsdk.examples.lpr.data "$data/calib-labelled.npz" --split train --count 64
"$PY" -c 'import sys, numpy as np  # convert/plan calibrate on pixels only: drop the labels
d = np.load(sys.argv[1]); np.savez(sys.argv[2], x=d["x"])' "$data/calib-labelled.npz" "$data/calib.npz"
rm "$data/calib-labelled.npz"
"$PY" -m splitsdk.examples.lpr.data "$data/val.npz" --split val --count "$VAL_FRAMES"
"$PY" -m splitsdk.examples.lpr.data "$data/test.npz" --split test --count "$TEST_FRAMES"
rm -rf "$data/frames"
"$PY" -m splitsdk.examples.lpr.data "$data/frames" --split test --count "$QEMU_FRAMES"

echo "== 2. inspect: split candidates of the small reader on the Cortex-A7 camera profile"
"$SPLITSDK" inspect "$weights/lpr_small.keras" --target cortex-a7 --plot "$out/splits.png" | tail -n 20

cases=()
for v in "${variants[@]}"; do
    model="$weights/lpr_$v.keras"
    wd="$out/$v"
    mkdir -p "$wd"
    echo "== 3. plan ($v LSTM): Hi3516EV200-class Cortex-A7, 3 Mbit/s, <= 1 point exact-plate drop on $VAL_FRAMES validation frames"
    echo "     (the planner converts each layer: the BiLSTM does not convert for the camera, so it stays in the cloud)"
    "$SPLITSDK" plan "$model" --target cortex-a7 --uplink 3mbit --max-accuracy-drop 1 \
        --calib "$data/calib.npz" --eval "$data/val.npz" --metric lpr_exact -o "$wd/plan.json"
    echo "== 4. report ($v)"
    "$SPLITSDK" report "$wd/plan.json" -o "$wd/report"
    echo "== 5. convert ($v): int8 edge TFLite + cloud model (BiLSTM) + CTC decoding as the receiver's post-processing"
    "$SPLITSDK" convert "$wd/plan.json" --model "$model" --calib "$data/calib.npz" --postprocess lpr_ctc \
        -o "$wd/bundle"
    echo "== 6. generate ($v): the C++ edge app (CMake project) for the Cortex-A7 camera"
    rm -rf "$wd/edge-app/build"  # a fresh CMake cache: the target's sysroot may have changed since the last run
    "$SPLITSDK" generate --target cortex-a7 --bundle "$wd/bundle" -o "$wd/edge-app"
    echo "== 7. build ($v): cross-compile against the armhf sysroot into a firmware directory"
    "$SPLITSDK" build "$wd/edge-app" -o "$wd/firmware"
    cases+=(--case "$v" "$model" "$wd")
done

ad="$out/adaptive"
mkdir -p "$ad"
echo "== 8. plan + convert (adaptive): the small reader over 1..20 Mbit/s -> a split set of <= 3 splits, one bundle"
echo "     (the set is held to the error proxy's budget on the calibration frames; its accuracy is measured in step 9)"
"$SPLITSDK" plan "$weights/lpr_small.keras" --target cortex-a7 --uplink 1mbit..20mbit --calib "$data/calib.npz" \
    -o "$ad/plan.json" | sed -n '/split set over/,$p'
"$SPLITSDK" convert "$ad/plan.json" --model "$weights/lpr_small.keras" --calib "$data/calib.npz" \
    --postprocess lpr_ctc -o "$ad/bundle"

echo "== 9. measure: the ARM edge app under qemu-arm on $QEMU_FRAMES test frames -> a real splitsdk serve"
echo "     (cloud half + CTC decoding, plates stored in SQLite and read back); host pipeline and CLOUD-ONLY+JPEG"
echo "     on $TEST_FRAMES frames; the adaptive bundle (Python camera) under a 20 -> 1 -> 20 Mbit/s link-shaper"
echo "     schedule against a real splitsdk serve, beside each static split of its set"
"$PY" -m splitsdk.examples.lpr.table --test "$data/test.npz" --calib "$data/calib.npz" --frames "$data/frames" \
    -n "$QEMU_FRAMES" "${cases[@]}" --adaptive "$ad" --step-s "$STEP_S" -o "$out/table.md" > "$out/table.log"

elapsed=$(( $(date +%s) - start ))
cat "$out/table.md"
echo
echo "================================ summary ================================"
sed -n '/^- \(AUTO-SPLIT\|plan\|adaptive\)/p' "$out/table.md"
echo "table:    $out/table.md (+ table.json)"
echo "reports:  $(printf "$out/%s/report " "${variants[@]}")(plots + Markdown)"
echo "bundles:  $(printf "$out/%s/bundle " "${variants[@]}")$ad/bundle (adaptive); firmware: $(printf "$out/%s/firmware " "${variants[@]}")"
echo "results:  $out/results-*.sqlite (the receiver's plate strings)"
echo "demo wall time: ${elapsed} s"
