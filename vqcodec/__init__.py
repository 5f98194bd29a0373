"""vqcodec: a learned image codec.

    data = vqcodec.compress("photo.png", stages=2)
    image = vqcodec.decompress(data)
"""
from vqcodec.api import (
    compress,
    compress_file,
    decompress,
    decompress_file,
    generate,
    inpaint,
    model_info,
    read_header,
)
from vqcodec.bitstream import BitstreamError, Header

__all__ = [
    "BitstreamError",
    "Header",
    "compress",
    "compress_file",
    "decompress",
    "decompress_file",
    "generate",
    "inpaint",
    "model_info",
    "read_header",
]
