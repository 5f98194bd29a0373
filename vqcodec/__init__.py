"""vqcodec: a learned image codec.

    data = vqcodec.compress("photo.png", stages=2)
    image = vqcodec.decompress(data)

Importing the package is cheap: it registers the `.vqc` format with Pillow and loads torch
and the API only when one of the names below is first used.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from vqcodec import pillow_plugin
from vqcodec.bitstream import BitstreamError, Header

try:
    __version__ = version("vqcodec")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# Public name → module that defines it, imported on first use.
_LAZY = {
    "compress": "vqcodec.api",
    "compress_file": "vqcodec.api",
    "decompress": "vqcodec.api",
    "decompress_file": "vqcodec.api",
    "generate": "vqcodec.api",
    "inpaint": "vqcodec.api",
    "model_info": "vqcodec.api",
    "read_header": "vqcodec.api",
    "operating_point": "vqcodec.api",
    "Codec": "vqcodec.tensors",
}

__all__ = ["BitstreamError", "Header", "__version__", *sorted(_LAZY)]

pillow_plugin.register()


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module 'vqcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
