"""Bounds the API puts on its arguments. A module without torch, so that the command line
can show them in its help without loading the model's libraries."""

MAX_RDO = 16.0  # larger rdo strengths are surely typos: at 2 the trade is already past its best (benchmarks/results/rdo)
# Largest image `decompress` decodes unless told otherwise: a stream's header claims its size,
# and decoding costs about 80 bytes of memory per pixel, so 2**25 pixels (8K UHD fits, about
# 2.7 GB at the peak) is the most a file from an unknown source may ask for by default.
DEFAULT_MAX_PIXELS = 1 << 25
