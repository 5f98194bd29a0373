from .codec import VQCodec
from .config import CodecConfig

__all__ = ["CodecConfig", "VQCodec"]
