# Benchmarks. Data folders are arguments: override them, e.g. `make rd-kodak KODAK=/data/kodak`.
KODAK ?= ../shared/data/kodak
PYTHON ?= python
RD_JOBS ?= 2

.PHONY: rd-kodak gpu-train

# Rate–distortion benchmark on the 24 Kodak images: rewrites benchmarks/results/kodak/
# (JSON, plots, side-by-side picture, table.md, summary.md for the README).
rd-kodak:
	OMP_NUM_THREADS=1 $(PYTHON) benchmarks/rd.py $(KODAK) --out benchmarks/results/kodak \
		--reference benchmarks/reference/compressai_kodak.csv \
		--compare kodim04,kodim15,kodim23 --jobs $(RD_JOBS)

# The wide recipe for one GPU and a fixed time budget: the VQ-VAE sizes its cosine schedule
# from the speed it measures in its warm-up so that it ends within VQVAE_MINUTES, then the
# realism decoder is fine-tuned for GAN_STEPS, or until GAN_MINUTES are spent. Each phase
# validates and saves after its last step, a little past its budget.
# Writes $(GPU_RUNS)/vqvae and $(GPU_RUNS)/vqgan; vqgan/weights.safetensors holds both
# decoders, ready for `vqcodec export-model`. Pack the data first (`vqcodec pack-data`) when
# it has to travel. GPU_ARGS adds overrides to both phases (e.g. device=cpu for a dry run);
# WIDE_MODEL= (empty) trains the shipped architecture instead. The peak lr stays below the
# 7e-4 at which this model's codebooks nearly collapsed on CPU (benchmarks/training_probe.py).
GPU_DATA ?= data/train
GPU_RUNS ?= runs/gpu
VQVAE_MINUTES ?= 6
GAN_MINUTES ?= 1.5
GAN_STEPS ?= 1500
GPU_ARGS ?=
WIDE_MODEL = model.width_fine=96 model.width_coarse=192 'model.encoder_blocks=[2,3]' 'model.decoder_blocks=[4,3]'

gpu-train:
	$(PYTHON) -m vqcodec.train data_dir=$(GPU_DATA) out_dir=$(GPU_RUNS)/vqvae $(WIDE_MODEL) \
		batch_size=64 lr=5e-4 warmup_steps=400 min_lr_ratio=0.05 ms_ssim_weight=0 steps=1000000 \
		time_budget=$(VQVAE_MINUTES) fit_steps_to_budget=true workers=8 log_every=50 \
		validate_every=2000 checkpoint_every=2000 $(GPU_ARGS)
	$(PYTHON) -m vqcodec.train phase=vqgan init_from=$(GPU_RUNS)/vqvae/latest.pt data_dir=$(GPU_DATA) \
		out_dir=$(GPU_RUNS)/vqgan batch_size=32 lr=1e-4 warmup_steps=50 disc_start=300 steps=$(GAN_STEPS) \
		time_budget=$(GAN_MINUTES) workers=8 log_every=50 validate_every=500 checkpoint_every=500 $(GPU_ARGS)
