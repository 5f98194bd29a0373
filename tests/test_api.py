"""Round trips and error handling of vqcodec.compress / decompress."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vqcodec
from tests.conftest import SAMPLE, smooth_image
from vqcodec import BitstreamError, zoo


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.mark.parametrize("width,height", [(1, 1), (7, 13), (3, 1000), (64, 64), (33, 17)])
def test_round_trip_any_size(width, height):
    image = smooth_image(width, height)
    data = vqcodec.compress(image)
    decoded = vqcodec.decompress(data)
    assert decoded.size == (width, height)
    assert decoded.mode == "RGB"
    assert len(data) == vqcodec.read_header(data).total_size
    if min(width, height) >= 16:  # padding and cropping keep the content where it was
        assert psnr(image, np.asarray(decoded)) > 20.0


def test_real_image_quality_band(sample_crop, sample_stream):
    decoded = vqcodec.decompress(sample_stream)
    # A trained model reconstructs a photo far better than a flat or random guess (~12 dB).
    assert psnr(np.asarray(sample_crop), np.asarray(decoded)) > 21.0


def test_full_sample_image_round_trip():
    with Image.open(SAMPLE) as image:
        data = vqcodec.compress(image, stages=1)
        decoded = vqcodec.decompress(data)
        assert decoded.size == image.size
        assert psnr(np.asarray(image.convert("RGB")), np.asarray(decoded)) > 22.0
    assert len(data) * 8 / (768 * 512) < 0.2


def test_bpp_rises_with_quality_through_every_operating_point(sample_crop):
    first_quality = {}
    for quality in range(101):
        first_quality.setdefault(vqcodec.operating_point(quality), quality)
    assert list(first_quality) == vqcodec.api.quality_points(zoo.load_model(), "context")  # each point, in order
    sizes = [len(vqcodec.compress(sample_crop, quality=q)) for q in first_quality.values()]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    with pytest.raises(ValueError, match="quality or rdo"):
        vqcodec.compress(sample_crop, quality=50, rdo=1)
    static = vqcodec.compress(sample_crop, quality=100, prior="static")  # no search: stage counts only
    assert vqcodec.read_header(static).stages == vqcodec.model_info()["stages"]


def test_fewer_stages_give_smaller_files_and_lower_quality(sample_crop):
    sizes, scores = [], []
    stages = vqcodec.model_info()["stages"]
    for count in range(1, stages + 1):
        data = vqcodec.compress(sample_crop, stages=count)
        assert vqcodec.read_header(data).stages == count
        sizes.append(len(data))
        scores.append(psnr(np.asarray(sample_crop), np.asarray(vqcodec.decompress(data))))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert scores[-1] > scores[0]


def test_truncated_prefix_decodes_at_fewer_stages(sample_crop, sample_stream):
    header = vqcodec.read_header(sample_stream)
    for count in range(1, header.stages):
        prefix = sample_stream[: header.prefix_size(count)]
        from_prefix = vqcodec.decompress(prefix, stages=count)
        direct = vqcodec.decompress(vqcodec.compress(sample_crop, stages=count))
        assert np.array_equal(np.asarray(from_prefix), np.asarray(direct))
        with pytest.raises(BitstreamError, match="truncated"):
            vqcodec.decompress(prefix)


def test_decode_is_deterministic(sample_stream):
    first = np.asarray(vqcodec.decompress(sample_stream))
    assert np.array_equal(first, np.asarray(vqcodec.decompress(sample_stream)))


def test_grayscale_comes_back_grayscale():
    gray = smooth_image(40, 24)[:, :, 0]
    decoded = vqcodec.decompress(vqcodec.compress(Image.fromarray(gray, "L")))
    assert decoded.mode == "L" and decoded.size == (40, 24)
    assert vqcodec.decompress(vqcodec.compress(gray)).mode == "L"


def test_rgba_alpha_is_kept_exactly():
    rgba = np.dstack([smooth_image(30, 20), np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)])
    decoded = vqcodec.decompress(vqcodec.compress(Image.fromarray(rgba, "RGBA")))
    assert decoded.mode == "RGBA"
    assert np.array_equal(np.asarray(decoded)[:, :, 3], rgba[:, :, 3])


def test_gray_with_alpha_stays_gray_with_exact_alpha():
    gray = smooth_image(30, 20)[:, :, 0]
    alpha = np.random.default_rng(2).integers(0, 256, (20, 30), dtype=np.uint8)
    decoded = vqcodec.decompress(vqcodec.compress(Image.fromarray(np.dstack([gray, alpha]), "LA")))
    assert decoded.mode == "LA"
    assert np.array_equal(np.asarray(decoded)[:, :, 1], alpha)
    assert vqcodec.read_header(vqcodec.compress(np.dstack([gray, alpha]))).mode == "LA"


def test_16bit_input_warns_and_converts():
    deep = smooth_image(16, 16)[:, :, 0].astype(np.uint16) * 257
    with pytest.warns(UserWarning, match="16-bit"):
        image = Image.fromarray(deep)
        assert image.mode.startswith("I;16")
        data = vqcodec.compress(image)
    assert vqcodec.decompress(data).mode == "L"
    assert data == vqcodec.compress(np.round(deep / 257).astype(np.uint8))


def test_tensor_and_path_inputs(tmp_path):
    array = smooth_image(24, 16)
    tensor = torch.from_numpy(array).permute(2, 0, 1).float() / 255.0
    assert vqcodec.compress(tensor) == vqcodec.compress(array)
    path = tmp_path / "in.png"
    Image.fromarray(array).save(path)
    assert vqcodec.compress(path) == vqcodec.compress(array)


def test_bpp_picks_the_highest_quality_point_that_fits(sample_crop):
    pixels = sample_crop.width * sample_crop.height
    ladder = list(dict.fromkeys(vqcodec.operating_point(quality) for quality in range(101)))
    sizes = {point: len(vqcodec.compress(sample_crop, stages=point[0], rdo=point[1])) for point in ladder}
    for aimed_at in ladder[4::9]:
        target = sizes[aimed_at] * 8 / pixels
        expected = [point for point in ladder if sizes[point] <= sizes[aimed_at]][-1]  # per image, sizes need not rise
        stages, rdo = expected
        assert vqcodec.compress(sample_crop, bpp=target) == vqcodec.compress(sample_crop, stages=stages, rdo=rdo)
    at_strength = [len(vqcodec.compress(sample_crop, stages=n, rdo=1)) for n in (2, 3)]
    data = vqcodec.compress(sample_crop, bpp=(at_strength[0] * 8 + 1) / pixels, rdo=1)  # 2 stages fit, 3 do not
    assert at_strength[1] > at_strength[0] and vqcodec.read_header(data).stages == 2
    with pytest.raises(ValueError, match="below the lowest rate"):
        vqcodec.compress(sample_crop, bpp=0.001)
    for bad in (0, -1.0, float("nan"), True, "0.3"):
        with pytest.raises(ValueError, match="bpp must be a positive number"):
            vqcodec.compress(sample_crop, bpp=bad)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"stages": 0}, "stages"),
        ({"stages": 99}, "stages"),
        ({"stages": 1, "bpp": 1.0}, "not both"),
        ({"model": "nope"}, "unknown model"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        vqcodec.compress(smooth_image(8, 8), **kwargs)


@pytest.mark.parametrize(
    "image,message",
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 5), np.uint8), "shape"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (torch.full((3, 4, 4), 2.0), r"\[0, 1\]"),
    ],
)
def test_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        vqcodec.compress(image)


def test_bit_flips_throughout_header_and_payload_are_detected(sample_stream):
    for position in range(0, len(sample_stream), 7):
        corrupted = bytearray(sample_stream)
        corrupted[position] ^= 1 << (position % 8)
        with pytest.raises(BitstreamError):
            vqcodec.decompress(bytes(corrupted))


def test_unknown_weights_hash_is_refused(sample_stream, monkeypatch):
    entry = zoo.MODELS[zoo.DEFAULT_MODEL]
    monkeypatch.setitem(zoo.MODELS, zoo.DEFAULT_MODEL, replace(entry, weights=replace(entry.weights, sha256="00" * 32)))
    with pytest.raises(BitstreamError, match="weights hash mismatch"):
        vqcodec.decompress(sample_stream)


def test_file_helpers_write_complete_files(tmp_path, sample_crop):
    source = tmp_path / "in.png"
    sample_crop.save(source)
    written = vqcodec.compress_file(source, tmp_path / "x.vqc")
    assert (tmp_path / "x.vqc").stat().st_size == written
    image = vqcodec.decompress_file(tmp_path / "x.vqc", tmp_path / "y.png")
    assert Image.open(tmp_path / "y.png").size == image.size == sample_crop.size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "x.vqc", "y.png"]


def test_writing_through_a_symlink_replaces_its_target_and_keeps_permissions(tmp_path):
    from vqcodec.files import write_atomic

    target = tmp_path / "real.vqc"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "link.vqc"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.vqc", "real.vqc"]


def test_huge_declared_size_is_refused_before_decoding(sample_stream):
    from vqcodec import bitstream

    header, alpha, payloads = bitstream.unpack(sample_stream)
    forged = bitstream.pack(
        model_id=header.model_id,
        weights_hash=header.weights_hash,
        prior=header.prior,
        prior_hash=header.prior_hash,
        width=65535,
        height=4096,
        mode="RGB",
        stride=header.stride,
        codebook_size=header.codebook_size,
        alpha=alpha,
        stage_payloads=[b""] * header.stages,
    )
    with pytest.raises(BitstreamError, match="pixels"):
        vqcodec.decompress(forged)


def test_context_prior_is_the_default_and_decodes_to_the_same_image_as_static(sample_crop):
    static = vqcodec.compress(sample_crop, stages=2, prior="static")
    context = vqcodec.compress(sample_crop, stages=2, rdo=0)  # the same indices: nearest codewords
    header = vqcodec.read_header(context)
    assert header.prior == "context" and header.prior_hash != bytes(8)
    assert vqcodec.read_header(vqcodec.compress(sample_crop, stages=1)).prior == "context"
    assert vqcodec.read_header(static).prior == "static" and len(context) < len(static)
    assert np.array_equal(np.asarray(vqcodec.decompress(context)), np.asarray(vqcodec.decompress(static)))
    prefix = context[: header.prefix_size(1)]
    assert np.array_equal(
        np.asarray(vqcodec.decompress(prefix, stages=1)),
        np.asarray(vqcodec.decompress(vqcodec.compress(sample_crop, stages=1, rdo=0))),
    )
    with pytest.raises(ValueError, match="prior"):
        vqcodec.compress(sample_crop, prior="fancy")


# Streams written by the shipped model with each prior (`tests/data/golden-MODEL-PRIOR.vqc`, a
# 64×48 crop of the sample at all stages, written by `python tests/make_golden.py MODEL`) and the
# sha256 of the indices they hold. A failure means files written before the change no longer
# decode: ship changed weights as a new model name.
GOLDEN_INDICES_SHA256 = {
    "vqc-f8-s10": "63a1e08fa4309650d0b796f24a1fe9dc9ba7e501daf13f24745600ee9c6fdc8b",
}
# Streams of retired models and priors, which this installation no longer ships.
RETIRED_STREAMS = sorted((SAMPLE.parent / "retired").glob("*.vqc"))


def test_every_shipped_model_has_golden_streams():
    assert set(GOLDEN_INDICES_SHA256) == set(zoo.installed_models())


@pytest.mark.parametrize("model", sorted(GOLDEN_INDICES_SHA256))
@pytest.mark.parametrize("prior", ["context", "static"])
def test_committed_streams_of_the_shipped_models_keep_decoding(model, prior):
    from vqcodec import bitstream
    from vqcodec.entropy.grid_coding import decode_grid, encode_grid
    from vqcodec.provenance import model_for_stream

    data = (SAMPLE.parent / f"golden-{model}-{prior}.vqc").read_bytes()
    header, _, payloads = bitstream.unpack(data)
    assert (header.model_id, header.prior) == (model, prior)
    _, coding_prior = model_for_stream(header)
    indices = decode_grid(coding_prior, payloads, *header.grid, header.codebook_size)
    assert hashlib.sha256(indices.astype("<i2").tobytes()).hexdigest() == GOLDEN_INDICES_SHA256[model]
    assert encode_grid(coding_prior, indices) == payloads  # and the encoder side writes the same bytes
    assert vqcodec.decompress(data).size == (64, 48)


@pytest.mark.parametrize("path", RETIRED_STREAMS, ids=lambda path: path.name)
def test_streams_of_retired_models_say_how_to_install_them(path, monkeypatch):
    monkeypatch.delenv(zoo.WEIGHTS_PATH_VARIABLE, raising=False)
    header = vqcodec.read_header(path.read_bytes())
    entry = zoo.MODELS[header.model_id]
    retired = entry.weights if entry.weights.retired_after else zoo.find_prior(header.model_id, header.prior_hash)
    with pytest.raises(BitstreamError) as caught:
        vqcodec.decompress(path.read_bytes())
    message = str(caught.value)
    assert header.model_id in message and "not installed" in message and zoo.WEIGHTS_PATH_VARIABLE in message
    assert f"git show {retired.retired_after[:12]}:vqcodec/weights/{retired.name}" in message


def test_a_quality_point_outside_the_model_is_refused(monkeypatch):
    entry = zoo.MODELS[zoo.DEFAULT_MODEL]
    monkeypatch.setitem(zoo.MODELS, zoo.DEFAULT_MODEL, replace(entry, quality_points=((1, 1.0), (99, 0.0))))
    zoo._load_model.cache_clear()
    with pytest.raises(ValueError, match="quality point outside"):
        zoo.load_model()
    zoo._load_model.cache_clear()


def test_a_retired_model_decodes_from_the_weights_folder(tmp_path, monkeypatch, sample_crop):
    # A stand-in retired model: the shipped files under another name, listed as retired.
    shipped = zoo.MODELS[zoo.DEFAULT_MODEL]
    folder = tmp_path / "weights"
    folder.mkdir()
    retired = replace(
        shipped,
        weights=replace(shipped.weights, name="old.safetensors", retired_after="0" * 40),
        priors=tuple(replace(p, name=f"old-{i}.prior", retired_after="0" * 40) for i, p in enumerate(shipped.priors[:1])),
    )
    monkeypatch.setitem(zoo.MODELS, zoo.DEFAULT_MODEL, retired)
    zoo._load_model.cache_clear()
    monkeypatch.delenv(zoo.WEIGHTS_PATH_VARIABLE, raising=False)
    with pytest.raises(zoo.NotInstalled, match="git show 000000000000:vqcodec/weights/old.safetensors"):
        vqcodec.compress(sample_crop)
    shipped_weights = Path(str(zoo.resources.files("vqcodec.weights")))
    shutil.copy(shipped_weights / shipped.weights.name, folder / "old.safetensors")
    shutil.copy(shipped_weights / shipped.priors[0].name, folder / "old-0.prior")
    monkeypatch.setenv(zoo.WEIGHTS_PATH_VARIABLE, str(folder))
    data = vqcodec.compress(sample_crop, stages=1)
    assert vqcodec.decompress(data).size == sample_crop.size
    (folder / "old.safetensors").write_bytes(b"not the weights")
    zoo._load_model.cache_clear()
    with pytest.raises(ValueError, match="sha256"):
        vqcodec.decompress(data)
    zoo._load_model.cache_clear()


def test_file_wrappers_never_write_over_their_input(tmp_path, sample_crop, sample_stream):
    sample_crop.save(tmp_path / "same.png")
    before = (tmp_path / "same.png").read_bytes()
    with pytest.raises(ValueError, match="same file"):
        vqcodec.compress_file(tmp_path / "same.png", tmp_path / "same.png")
    assert (tmp_path / "same.png").read_bytes() == before
    (tmp_path / "s.vqc").write_bytes(sample_stream)
    with pytest.raises(ValueError, match="same file"):
        vqcodec.decompress_file(tmp_path / "s.vqc", tmp_path / "." / "s.vqc")
    assert (tmp_path / "s.vqc").read_bytes() == sample_stream


def test_integral_arguments_of_any_type_and_empty_tensors(sample_crop):
    array = np.array(sample_crop)
    data = vqcodec.compress(array, stages=np.int64(2))
    assert data == vqcodec.compress(array, stages=2)
    assert vqcodec.decompress(data, stages=np.int64(1)) == vqcodec.decompress(data, stages=1)
    with pytest.raises(ValueError, match="empty"):
        vqcodec.compress(torch.zeros(3, 0, 40))
    with pytest.raises(ValueError, match="stages"):
        vqcodec.compress(array, stages=2.0)


def write_jpeg_with_metadata(path: Path) -> bytes:
    """A 48×32 JPEG with an sRGB ICC profile and EXIF orientation 6 (turn 90° clockwise to
    view it); returns the profile."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "vqcodec tests"  # Make
    Image.fromarray(smooth_image(48, 32)).save(path, quality=95, icc_profile=icc, exif=exif.tobytes())
    return icc


def test_icc_profile_and_exif_travel_and_the_pixels_come_upright(tmp_path):
    from PIL import ImageOps

    icc = write_jpeg_with_metadata(tmp_path / "photo.jpg")
    data = vqcodec.compress(tmp_path / "photo.jpg")
    assert vqcodec.read_header(data).version == 2
    with Image.open(tmp_path / "photo.jpg") as opened:
        assert vqcodec.compress(opened) == data  # a PIL image brings its metadata too
        upright = np.asarray(ImageOps.exif_transpose(opened))
    image = vqcodec.decompress(data)
    assert image.size == (32, 48) and psnr(np.asarray(image), upright) > 25
    assert image.info["icc_profile"] == icc
    assert image.getexif()[0x0112] == 1 and image.getexif()[0x010F] == "vqcodec tests"
    (tmp_path / "photo.vqc").write_bytes(data)
    for suffix in (".png", ".jpg", ".webp"):
        vqcodec.decompress_file(tmp_path / "photo.vqc", tmp_path / f"out{suffix}")
        with Image.open(tmp_path / f"out{suffix}") as written:
            assert written.size == (32, 48) and written.info["icc_profile"] == icc, suffix
            assert written.getexif()[0x0112] == 1 and written.getexif()[0x010F] == "vqcodec tests", suffix
    stripped = vqcodec.compress(tmp_path / "photo.jpg", strip=True)
    assert vqcodec.read_header(stripped).version == 1 and len(stripped) < len(data)
    image = vqcodec.decompress(stripped)
    assert image.size == (32, 48) and "icc_profile" not in image.info and "exif" not in image.info


def test_a_corrupted_metadata_segment_fails_to_decode(tmp_path):
    write_jpeg_with_metadata(tmp_path / "photo.jpg")
    data = bytearray(vqcodec.compress(tmp_path / "photo.jpg", stages=1))
    header = vqcodec.read_header(bytes(data))
    data[header.header_size + header.icc_length + 3] ^= 0x10  # inside the EXIF segment
    with pytest.raises(BitstreamError, match="checksum mismatch in EXIF segment"):
        vqcodec.decompress(bytes(data))


def test_damaged_metadata_is_a_clear_error_and_strip_codes_the_pixels(tmp_path):
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "bad-icc.png", icc_profile=b"not a profile" * 20)
    with pytest.raises(ValueError, match=r"ICC profile is damaged.*strip=True"):
        vqcodec.compress(tmp_path / "bad-icc.png")
    assert vqcodec.decompress(vqcodec.compress(tmp_path / "bad-icc.png", strip=True)).size == (16, 16)
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "bad-exif.png", exif=b"Exif\x00\x00garbage")
    with pytest.raises(ValueError, match=r"EXIF block is damaged.*strip=True"):
        vqcodec.compress(tmp_path / "bad-exif.png")
    assert vqcodec.decompress(vqcodec.compress(tmp_path / "bad-exif.png", strip=True)).size == (16, 16)


def test_a_profile_of_another_colour_space_is_dropped_with_a_warning(tmp_path):
    from PIL import ImageCms

    gray = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # not RGB
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "lab.png", icc_profile=gray)
    with pytest.warns(UserWarning, match="ICC profile describes"):
        data = vqcodec.compress(tmp_path / "lab.png", stages=1)
    assert vqcodec.read_header(data).icc_length == 0
