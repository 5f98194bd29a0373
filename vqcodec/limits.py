"""Bounds the API puts on its arguments. A module without torch, so that the command line
can show them in its help without loading the model's libraries."""

MAX_RDO = 16.0  # larger rdo strengths are surely typos: at 2 the trade is already past its best (benchmarks/results/rdo)
MAX_REFINE_STEPS = 1000  # through the quantizer refinement levels off within 25-50 steps (experiments/latent-refinement)
# Largest image `decompress` decodes unless told otherwise: a stream's header claims its size,
# and decoding costs time and memory that grow with it (on two cores about 2.5 s per
# megapixel; 1.0 GB at 24 MP, 1.3 GB at 100 MP: docs/results.md "Large images"), so 2**25
# pixels (8K UHD fits: about 1.5 minutes and 1.1 GB) is the most a file from an unknown
# source may ask for by default.
DEFAULT_MAX_PIXELS = 1 << 25
