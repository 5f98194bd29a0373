# Benchmarks. Data folders are arguments: override them, e.g. `make rd-kodak KODAK=/data/kodak`.
KODAK ?= ../shared/data/kodak
PYTHON ?= python
RD_JOBS ?= 2

.PHONY: rd-kodak gpu-train gpu-data gpu-wheels gpu-carry-check gpu-run

# Rate–distortion benchmark on the 24 Kodak images: rewrites benchmarks/results/kodak/
# (JSON, plots, side-by-side picture, table.md, summary.md for the README). Needs the bench
# extras (pip install -e ".[bench]"): without imagecodecs JPEG XL is skipped (rd.json lists
# it under "skipped") and its curve in the folder is not rewritten.
rd-kodak:
	OMP_NUM_THREADS=1 $(PYTHON) benchmarks/rd.py $(KODAK) --out benchmarks/results/kodak \
		--reference benchmarks/reference/compressai_kodak.csv \
		--compare kodim04,kodim15,kodim23 --jobs $(RD_JOBS)

# GPU work (docs/gpu-run.md). The training recipe lives in benchmarks/gpu_train.sh, which
# holds the defaults of the variables below (GPU_DATA, GPU_RUNS, GPU_MODEL=wide|shipped,
# GPU_STAGES, VQVAE_MINUTES, GAN_MINUTES, GAN_STEPS, GPU_ARGS); name them to override, e.g.
# `make gpu-train GPU_DATA=data/train VQVAE_MINUTES=6 GPU_ARGS="device=cpu ..."`.
export GPU_DATA GPU_RUNS GPU_MODEL GPU_STAGES VQVAE_MINUTES GAN_MINUTES GAN_STEPS GPU_ARGS
TRAIN_DATA ?= ../shared/data/train
GPU_OUT ?= runs/gpu-out
# What a GPU job carries besides the working tree, and its limit (MiB).
GPU_CARRY ?= data/train wheels
GPU_CARRY_MIB ?= 64

gpu-train:
	PYTHON=$(PYTHON) bash benchmarks/gpu_train.sh

# The compact training set a GPU job carries (WebP, shorter side 256).
gpu-data:
	$(PYTHON) -m vqcodec.cli pack-data $(TRAIN_DATA) data/train

# Wheels of the runtime packages a GPU machine may lack, for Python 3.10-3.13 (one binary
# wheel per version for constriction, an abi3 one for safetensors, pure-Python ones for the
# rest); the job installs only those it is missing. pytest stays below 8.4, which added a
# dependency on pygments (1.2 MB); tomli and exceptiongroup are what it needs on 3.10.
gpu-wheels:
	rm -rf wheels && mkdir wheels
	for v in 310 311 312 313; do \
		$(PYTHON) -m pip download --quiet --no-deps -d wheels --only-binary=:all: --platform manylinux2014_x86_64 \
			--python-version $$v "constriction==$$($(PYTHON) -c 'import importlib.metadata as m; print(m.version("constriction"))')" || exit 1; \
	done
	$(PYTHON) -m pip download --quiet --no-deps -d wheels --only-binary=:all: --platform manylinux2014_x86_64 \
		--python-version 310 "safetensors==$$($(PYTHON) -c 'import importlib.metadata as m; print(m.version("safetensors"))')"
	$(PYTHON) -m pip download --quiet --no-deps -d wheels --only-binary=:all: --implementation py --abi none \
		--platform any --python-version 3.10 click tqdm "pytest>=8,<8.4" pluggy iniconfig packaging tomli exceptiongroup
	du -ch wheels/*.whl | tail -1

# Fails, with the numbers, when the job would carry more than GPU_CARRY_MIB.
gpu-carry-check:
	$(PYTHON) benchmarks/gpu_carry.py $(GPU_CARRY) --limit-mib $(GPU_CARRY_MIB)

# The whole GPU job (kernel tests and benchmark, VQ-VAE, realism decoder) into GPU_OUT.
gpu-run:
	OUT=$(GPU_OUT) PYTHON=$(PYTHON) bash benchmarks/gpu_run.sh
