# Benchmarks. Data folders are arguments: override them, e.g. `make rd-kodak KODAK=/data/kodak`.
KODAK ?= ../shared/data/kodak
PYTHON ?= python
RD_JOBS ?= 2

.PHONY: rd-kodak

# Rate–distortion benchmark on the 24 Kodak images: rewrites benchmarks/results/kodak/
# (JSON, plots, side-by-side picture, table.md, summary.md for the README).
rd-kodak:
	OMP_NUM_THREADS=1 $(PYTHON) benchmarks/rd.py $(KODAK) --out benchmarks/results/kodak \
		--reference benchmarks/reference/compressai_kodak.csv \
		--compare kodim04,kodim15,kodim23 --jobs $(RD_JOBS)
