"""Nearest-codeword search: for N vectors of dimension D, the nearest of K codewords.

`nearest_codeword` is the one entry point the quantizer calls.
"""

from .dispatch import nearest_codeword

__all__ = ["nearest_codeword"]
