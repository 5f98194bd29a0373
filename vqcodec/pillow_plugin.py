"""Pillow plugin: `Image.open` reads `.vqc` streams and `Image.save` writes them.

Registered by `import vqcodec`. Files are recognised by their magic, not their suffix.
Opening reads the header only (size and mode, no torch import); the model runs when the
pixels are first needed (`load()`, `convert()`, `np.asarray(...)`). Saving takes the
options of `vqcodec.compress`:

    image.save("photo.vqc", quality=80)        # 0..100 → stage count and rdo strength (api.operating_point)
    image.save("photo.vqc", stages=2)          # or bpp=0.3, model=..., prior=..., rdo=..., device=..., strip=True

`Image.open` gives a stream's ICC profile and EXIF in `image.info` as soon as it is opened.

A stream that ends early fails to load with an OSError, as a truncated PNG does; with
`ImageFile.LOAD_TRUNCATED_IMAGES = True` it loads from the stages it holds in full (the
format is progressive), as long as it holds one.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from vqcodec.bitstream import MAGIC, MAX_HEADER_SIZE, BitstreamError, Header, read_header, unpack_metadata

FORMAT = "VQC"
EXTENSION = ".vqc"
MIME = "image/x-vqc"
# `compress` options that `Image.save` passes through (others, such as Pillow's own, are ignored).
SAVE_OPTIONS = ("stages", "bpp", "quality", "model", "prior", "prior_file", "rdo", "refine", "device", "strip")


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class VqcImageFile(ImageFile.ImageFile):
    """A `.vqc` stream opened by Pillow: header read, pixels decoded on `load()`."""

    format = FORMAT
    format_description = "vqcodec learned image codec"

    def _open(self) -> None:
        assert self.fp is not None  # Pillow opens a file before asking a plugin to read it
        try:
            header = read_header(self.fp.read(MAX_HEADER_SIZE))
            if header.version >= 2:  # the ICC profile and EXIF follow the header (and alpha), before the stages
                self.fp.seek(0)
                icc_profile, exif = unpack_metadata(self.fp.read(header.prefix_size(0)))
                self.info.update({key: value for key, value in (("icc_profile", icc_profile), ("exif", exif)) if value})
        except BitstreamError as error:  # the magic matched: say what is wrong, not "cannot identify"
            raise OSError(f"broken {EXTENSION} file: {error}") from error
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info.update(model=header.model_id, stages=header.stages, prior=header.prior)
        self.tile = [ImageFile._Tile(FORMAT, (0, 0, *self.size), 0, None)]


class _VqcDecoder(ImageFile.PyDecoder):
    """Reads the whole stream from the file and decodes it with the model it names."""

    _pulls_fd = True

    def decode(self, buffer: object) -> tuple[int, int]:  # `buffer` is unused: the decoder pulls the file itself
        from vqcodec.api import decompress

        assert self.fd is not None  # set by Pillow for a decoder with _pulls_fd
        head = self.fd.read(MAX_HEADER_SIZE)
        header = read_header(head)
        data = head[: header.total_size] + self.fd.read(max(0, header.total_size - len(head)))
        try:
            image = decompress(data, stages=_stages_to_decode(header, len(data)))
        except BitstreamError as error:
            raise OSError(f"cannot decode {EXTENSION} file: {error}") from error
        self.set_as_raw(image.tobytes(), image.mode)
        return -1, 0


def _stages_to_decode(header: Header, available: int) -> int | None:
    """None (all) for a whole stream; for a truncated one, the stages it holds in full when
    Pillow is told to load truncated images (None otherwise: decoding then says what is missing)."""
    if available >= header.total_size or not ImageFile.LOAD_TRUNCATED_IMAGES:
        return None
    complete = sum(header.prefix_size(n) <= available for n in range(1, header.stages + 1))
    return complete or None


def _save(image: Image.Image, fp, filename: str | bytes) -> None:
    from vqcodec.api import compress

    options = {key: image.encoderinfo[key] for key in SAVE_OPTIONS if key in image.encoderinfo}
    fp.write(compress(image, **options))


def register() -> None:
    """Register the format with Pillow (idempotent)."""
    Image.register_open(FORMAT, VqcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(FORMAT, _VqcDecoder)
