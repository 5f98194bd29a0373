"""The `.vqc` Pillow plugin, used through Pillow only: open, lazy load, save options, errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile

import vqcodec  # noqa: F401  (registers the plugin)
from tests.conftest import smooth_image
from vqcodec import zoo


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_round_trip_through_pillow(tmp_path, mode):
    rgb = smooth_image(40, 24)
    source = Image.fromarray(rgb).convert(mode)
    if mode == "RGBA":
        source.putalpha(Image.fromarray((np.arange(40 * 24) % 251).astype(np.uint8).reshape(24, 40)))
    source.save(tmp_path / "x.vqc")
    with Image.open(tmp_path / "x.vqc") as opened:
        assert (opened.format, opened.size, opened.mode) == ("VQC", (40, 24), mode)
        decoded = np.asarray(opened)
    original = np.asarray(source)
    assert decoded.shape == original.shape
    if mode == "RGBA":
        assert np.array_equal(decoded[..., 3], original[..., 3])  # alpha is lossless
    assert _psnr(decoded[..., :3], original[..., :3]) > 20


def test_open_reads_the_header_only_and_decodes_on_load(tmp_path):
    Image.fromarray(smooth_image(32, 16)).save(tmp_path / "x.vqc", stages=1)
    with Image.open(tmp_path / "x.vqc") as opened:
        assert opened.size == (32, 16) and opened.info["stages"] == 1
        assert opened.tile  # nothing decoded yet
        opened.load()
        assert not opened.tile and opened.getpixel((0, 0)) is not None


def test_open_and_save_are_found_by_magic_and_suffix(tmp_path):
    Image.fromarray(smooth_image(16, 16)).save(tmp_path / "no-suffix", format="VQC")
    with Image.open(tmp_path / "no-suffix") as opened:
        assert opened.format == "VQC"
    assert Image.registered_extensions()[".vqc"] == "VQC"


def test_save_options_pick_the_operating_point(tmp_path):
    image = Image.fromarray(smooth_image(64, 48))
    sizes = {}
    for name, options in {
        "q10": {"quality": 10},
        "q90": {"quality": 90},
        "s1": {"stages": 1},
        "s4": {"stages": 4},
        "bpp": {"bpp": 0.5},
    }.items():
        image.save(tmp_path / f"{name}.vqc", **options)
        sizes[name] = (tmp_path / f"{name}.vqc").stat().st_size
        with Image.open(tmp_path / f"{name}.vqc") as opened:
            sizes[name + "-stages"] = opened.info["stages"]
    assert sizes["q10-stages"] == vqcodec.operating_point(10)[0] and sizes["q90-stages"] == vqcodec.operating_point(90)[0]
    assert sizes["s1"] < sizes["s4"] and sizes["q10"] <= sizes["q90"]
    assert sizes["bpp"] * 8 <= 0.5 * 64 * 48
    with pytest.raises(ValueError, match="quality"):
        image.save(tmp_path / "bad.vqc", quality=101)


def test_quality_steps_through_every_operating_point_in_order():
    stages = vqcodec.model_info()["stages"]
    points = [vqcodec.operating_point(q) for q in range(101)]
    listed = vqcodec.api.quality_points(zoo.load_model(), "context")
    assert sorted(set(points), key=points.index) == listed and len(set(points)) == len(listed)
    assert points[0] == (1, 2.0) and points[100] == (stages, 0.0)
    static = [vqcodec.operating_point(q, prior="static") for q in range(101)]
    assert sorted(set(static), key=static.index) == [(count, 0.0) for count in range(1, stages + 1)]
    assert [count for count, _ in static] == sorted(count for count, _ in static)


def test_a_model_without_quality_points_steps_through_every_stage_count_and_strength():
    grid = vqcodec.api.operating_points(4)
    assert len(grid) == 16 and grid[0] == (1, 2.0) and grid[3] == (1, 0.0) and grid[-1] == (4, 0.0)
    untuned = dataclasses.replace(zoo.load_model(), quality_points=())
    assert vqcodec.api.quality_points(untuned, "context") == vqcodec.api.operating_points(untuned.codec.config.stages)
    without_search = dataclasses.replace(untuned, rdo_lambdas=())
    assert vqcodec.api.quality_points(without_search, "context") == vqcodec.api.operating_points(
        untuned.codec.config.stages, (0.0,)
    )


def test_truncated_files_fail_cleanly_and_load_from_whole_stages_when_allowed(tmp_path):
    Image.fromarray(smooth_image(48, 32)).save(tmp_path / "x.vqc", stages=2)
    data = (tmp_path / "x.vqc").read_bytes()
    header = vqcodec.read_header(data)
    (tmp_path / "head.vqc").write_bytes(data[:20])
    with pytest.raises(OSError, match="truncated"):
        Image.open(tmp_path / "head.vqc")
    (tmp_path / "cut.vqc").write_bytes(data[: header.prefix_size(1) + 3])
    with Image.open(tmp_path / "cut.vqc") as opened:
        assert opened.size == (48, 32)  # the header is whole
        with pytest.raises(OSError, match="truncated.*stages<=1"):
            opened.load()
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        with Image.open(tmp_path / "cut.vqc") as opened:
            prefix = np.asarray(opened)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    assert np.array_equal(prefix, np.asarray(vqcodec.decompress(data, stages=1)))


def test_other_files_are_left_to_other_plugins(tmp_path):
    (tmp_path / "x.vqc").write_bytes(b"not a stream at all")
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(tmp_path / "x.vqc")


def test_import_and_open_do_not_load_torch(tmp_path):
    Image.fromarray(smooth_image(16, 8)).save(tmp_path / "x.vqc")
    script = (
        "import sys, vqcodec; from PIL import Image; "
        f"image = Image.open({str(tmp_path / 'x.vqc')!r}); assert image.size == (16, 8); "
        "assert 'torch' not in sys.modules, 'torch imported early'; image.load(); "
        "assert 'torch' in sys.modules; print(vqcodec.__version__)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_decoding_to_a_vqc_file_is_refused(tmp_path):
    Image.fromarray(smooth_image(16, 8)).save(tmp_path / "x.vqc", stages=1)
    with pytest.raises(ValueError, match="code the image again"):
        vqcodec.decompress_file(tmp_path / "x.vqc", tmp_path / "y.vqc")


def test_the_icc_profile_and_exif_come_with_the_opened_image_and_strip_drops_them(tmp_path):
    from test_api import write_jpeg_with_metadata

    icc = write_jpeg_with_metadata(tmp_path / "photo.jpg")
    with Image.open(tmp_path / "photo.jpg") as photo:
        photo.save(tmp_path / "photo.vqc", stages=1)
        photo.save(tmp_path / "stripped.vqc", stages=1, strip=True)
    with Image.open(tmp_path / "photo.vqc") as opened:
        assert opened.info["icc_profile"] == icc and opened.getexif()[0x010F] == "vqcodec tests"
        assert opened.size == (32, 48)  # the EXIF orientation was applied at encode
    with Image.open(tmp_path / "stripped.vqc") as opened:
        assert "icc_profile" not in opened.info and "exif" not in opened.info
