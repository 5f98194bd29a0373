#!/usr/bin/env bash
# The recipe for training the next model on one GPU to a fixed time budget; `make gpu-train`
# and benchmarks/gpu_run.sh run it. `gpu_train.sh [vqvae] [vqgan]` runs the phases named
# (both by default), in that order:
#   vqvae  encoder, codebooks and fidelity decoder; the cosine schedule is sized from the
#          speed measured in the warm-up to end within VQVAE_MINUTES, a timer stops the run,
#          then it validates on the held-out crops and saves (a little past its budget);
#   vqgan  the realism decoder, fine-tuned on the frozen VQ-VAE for GAN_STEPS or until
#          GAN_MINUTES are spent.
# Writes $GPU_RUNS/vqvae and $GPU_RUNS/vqgan; vqgan/weights.safetensors holds both decoders,
# ready for `vqcodec export-model`. The images stay on the device as one uint8 tensor
# (resident_data), and on CUDA the forward passes run under bf16 autocast.
#
# Settings, from the environment (unset or empty: the default in brackets):
#   GPU_DATA       training images [data/train]; pack them first with `vqcodec pack-data`
#   GPU_RUNS       output folder [runs/gpu]
#   GPU_MODEL      wide: widths 96/192, encoder blocks (2,3), decoder blocks (4,3), codebooks
#                  of K=512, which halve the context prior's work per stage and so leave the
#                  wide decoder room under the decode-speed bar (experiments/codebook-size,
#                  experiments/decoder-cost); or shipped: the shipped architecture (from
#                  vqc-f8-s10, a further leg of the shipped model) [wide]
#   GPU_STAGES     residual quantizer stages [10]
#   GPU_INIT       what the vqvae phase grows from (`init_from`, vqcodec/train/warm_start.py): a
#                  model name, weights or a latest.pt; `none` starts from random weights. The
#                  grown model first computes what the shipped one does, codebooks included
#                  [vqc-f8-s10]; it sets the peak lr (below)
#   VQVAE_MINUTES, GAN_MINUTES, GAN_STEPS  [6, 1.5, 1500]
#   GPU_ARGS       more key=value overrides for both phases, last so they win (e.g. device=cpu)
#   PYTHON         [python]
# Peak lr: 1e-4 when grown from a trained model, since a higher one first undoes more of what
# that model learned (at 2e-4 and 3e-4, 0.27 and 1.09 dB behind after 250 steps on CPU, 0.03
# and 0.08 dB after 500: experiments/grown-wide); 5e-4 from random weights, below the 7e-4 at
# which the wide model's codebooks nearly collapsed (experiments/architecture).
set -euo pipefail
set -f  # overrides such as model.encoder_blocks=[2,3] are words, not file patterns

PYTHON=${PYTHON:-python}
DATA=${GPU_DATA:-data/train}
RUNS=${GPU_RUNS:-runs/gpu}
case ${GPU_MODEL:-wide} in
    wide) MODEL=(model.width_fine=96 model.width_coarse=192 model.encoder_blocks=[2,3] model.decoder_blocks=[4,3]
                model.codebook_size=512) STAGES=10 ;;
    shipped) MODEL=(model.codebook_size=512) STAGES=10 ;;
    *) echo "GPU_MODEL must be wide or shipped, got '$GPU_MODEL'" >&2; exit 2 ;;
esac
INIT=${GPU_INIT:-vqc-f8-s10} LR=1e-4
[ "$INIT" = none ] && INIT="" LR=5e-4
read -ra EXTRA <<< "${GPU_ARGS:-}"
[ $# -gt 0 ] || set -- vqvae vqgan

for phase in "$@"; do
    case $phase in
        vqvae)
            "$PYTHON" -m vqcodec.train data_dir="$DATA" out_dir="$RUNS/vqvae" init_from="$INIT" ${MODEL[@]+"${MODEL[@]}"} \
                model.stages="${GPU_STAGES:-$STAGES}" batch_size=64 lr=$LR warmup_steps=400 min_lr_ratio=0.05 \
                ms_ssim_weight=0 steps=1000000 time_budget="${VQVAE_MINUTES:-6}" fit_steps_to_budget=true \
                resident_data=true log_every=50 validate_every=2000 checkpoint_every=2000 ${EXTRA[@]+"${EXTRA[@]}"} ;;
        vqgan)
            "$PYTHON" -m vqcodec.train phase=vqgan init_from="$RUNS/vqvae/latest.pt" data_dir="$DATA" \
                out_dir="$RUNS/vqgan" batch_size=32 lr=1e-4 warmup_steps=50 disc_start=300 \
                steps="${GAN_STEPS:-1500}" time_budget="${GAN_MINUTES:-1.5}" resident_data=true log_every=50 \
                validate_every=500 checkpoint_every=500 ${EXTRA[@]+"${EXTRA[@]}"} ;;
        *) echo "unknown phase '$phase': expected vqvae or vqgan" >&2; exit 2 ;;
    esac
done
