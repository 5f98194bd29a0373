#!/usr/bin/env bash
# Crop size of the training recipe: two equal 30-minute legs from vqc-f8-s10, the same pixels
# per step (16 crops of 128² against 4 of 256²), then held-out curves per step and per hour,
# and both on Kodak with the static prior and nearest codewords against the shipped model.
# Run from the repository root, alone on the machine (the legs train to a timer).
set -euo pipefail
DATA=${DATA:-../shared/data/train} KODAK=${KODAK:-../shared/data/kodak} RUNS=${RUNS:-runs/crop}
OUT=experiments/crop-size/results
common=(data_dir="$DATA" init_from=vqc-f8-s10 model.codebook_size=512 model.stages=10 warmup_steps=200
    ms_ssim_weight=0 threads=2 validate_every=500 lr=1e-4 steps=60000 time_budget=30 fit_steps_to_budget=true)
vqcodec train out_dir="$RUNS/c128" crop=128 batch_size=16 "${common[@]}"
vqcodec train out_dir="$RUNS/c256" crop=256 batch_size=4 "${common[@]}"
mkdir -p "$OUT/kodak"
for run in c128 c256; do
    mkdir -p "$OUT/logs/$run" && cp "$RUNS/$run/config.json" "$OUT/logs/$run/"
    xz -9 -c "$RUNS/$run/metrics.jsonl" > "$OUT/logs/$run/metrics.jsonl.xz"
    vqcodec export-model "$RUNS/$run/weights.safetensors" "$RUNS/$run-fitted.safetensors" --data-dir "$DATA" --force
    vqcodec evaluate "$KODAK" --weights "$RUNS/$run-fitted.safetensors" --prior static \
        --json "$OUT/kodak/$run-fidelity.json" --force
done
vqcodec evaluate "$KODAK" --model vqc-f8-s10 --prior static --json "$OUT/kodak/vqc-f8-s10-fidelity.json" --force
python benchmarks/training_probe.py "crops 128², batch 16=$OUT/logs/c128" "crops 256², batch 4=$OUT/logs/c256" \
    --out "$OUT"
python benchmarks/model_change.py --previous "$OUT/kodak/c128" --current "$OUT/kodak/c256" --decoders fidelity \
    --out "$OUT/kodak"
for run in c128 c256; do  # each leg against the model it started from: what 30 minutes bought
    python benchmarks/model_change.py --previous "$OUT/kodak/vqc-f8-s10" --current "$OUT/kodak/$run" \
        --decoders fidelity --out "$OUT/kodak/$run-vs-shipped"
done
