"""pack-data: a compact copy of a training set, all or nothing, never overwriting unasked."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vqcodec.cli import main
from vqcodec.train.data import list_images
from vqcodec.train.pack import pack_training_set, packed_name


def write_sources(root: Path) -> Path:
    """A nested folder of images the codec takes: a large RGB JPEG, an RGBA PNG, a grayscale
    PNG, a small WebP, plus a file that is not an image (not listed, so not packed)."""
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)).save(root / "large.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (40, 60, 4), dtype=np.uint8)).save(root / "sub" / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (50, 30), dtype=np.uint8)).save(root / "sub" / "gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / "small.webp")
    (root / "notes.txt").write_text("not an image")
    return root


def test_pack_scales_the_short_side_down_converts_and_keeps_the_tree(tmp_path):
    source = write_sources(tmp_path / "src")
    packed = pack_training_set(source, tmp_path / "out", short_side=45, quality=90)
    assert list(packed) == list_images(source)
    written = list(packed.values())
    assert [path.relative_to(tmp_path / "out") for path in written] == [
        Path("large.jpg.webp"),
        Path("small.webp"),
        Path("sub/alpha.png.webp"),
        Path("sub/gray.png.webp"),
    ]
    assert list_images(tmp_path / "out") == written
    sizes = {path.name: Image.open(path).size for path in written}
    # Shorter sides above 45 come down to 45 (aspect kept); smaller images are not upscaled.
    assert sizes == {"large.jpg.webp": (75, 45), "small.webp": (20, 20), "alpha.png.webp": (60, 40), "gray.png.webp": (30, 50)}
    assert all(Image.open(path).format == "WEBP" and Image.open(path).mode == "RGB" for path in written)


def test_default_settings_keep_a_validation_crop_in_every_image(tmp_path):
    """The defaults' short side is the default validation crop, so a 256² crop of every
    packed image needs no upscaling."""
    from vqcodec.train.config import TrainConfig

    source = tmp_path / "src"
    source.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (300, 900, 3), dtype=np.uint8)).save(source / "wide.png")
    packed = pack_training_set(source, tmp_path / "out")
    assert Image.open(packed[source / "wide.png"]).size == (768, TrainConfig().validation_crop)


def test_packed_names_differ_by_source_suffix_and_a_clash_is_refused(tmp_path):
    names = [Path("a.jpg"), Path("a.jpeg"), Path("a.png"), Path("a.PNG"), Path("a.webp"), Path("a.WEBP")]
    assert len({packed_name(name) for name in names}) == len(names)
    source = write_sources(tmp_path / "src")
    Image.new("RGB", (9, 9)).save(source / "large.jpg.webp")  # lands where large.jpg would
    with pytest.raises(ValueError, match="large.jpg.webp"):
        pack_training_set(source, tmp_path / "out", short_side=64, quality=80)
    assert not (tmp_path / "out").exists()


def test_pack_refuses_to_overwrite_and_a_failure_leaves_nothing_behind(tmp_path):
    source = write_sources(tmp_path / "src")
    target = tmp_path / "out"
    pack_training_set(source, target, short_side=64, quality=80)
    before = sorted(p.name for p in target.rglob("*"))
    with pytest.raises(FileExistsError, match="--force"):
        pack_training_set(source, target, short_side=64, quality=80)
    (source / "sub" / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match="broken.png"):
        pack_training_set(source, target, short_side=64, quality=80, force=True)
    assert sorted(p.name for p in target.rglob("*")) == before  # the old copy survives whole
    assert not any(p.name.startswith(".out.") for p in tmp_path.iterdir())  # no staging folder left
    (source / "sub" / "broken.png").unlink()
    pack_training_set(source, target, short_side=32, quality=80, force=True)
    assert min(Image.open(target / "large.jpg.webp").size) == 32


def test_pack_refuses_overlapping_folders_even_with_force(tmp_path, monkeypatch):
    source = write_sources(tmp_path / "data" / "raw")
    monkeypatch.chdir(tmp_path / "data")
    for destination in (source / "packed", source, tmp_path / "data", Path("."), Path("raw/..")):
        with pytest.raises(ValueError, match="overlap"):
            pack_training_set(source, destination, short_side=64, quality=80, force=True)
    assert len(list_images(source)) == 4


def test_force_replaces_a_symlink_not_what_it_points_to(tmp_path):
    source = write_sources(tmp_path / "src")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "precious.txt").write_text("keep me")
    (tmp_path / "out").symlink_to(kept, target_is_directory=True)
    with pytest.raises(FileExistsError):
        pack_training_set(source, tmp_path / "out", short_side=64, quality=80)
    pack_training_set(source, tmp_path / "out", short_side=64, quality=80, force=True)
    assert not (tmp_path / "out").is_symlink() and len(list_images(tmp_path / "out")) == 4
    assert (kept / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "out", "src"]  # nothing set aside is left


def test_a_failed_final_rename_puts_the_old_copy_back(tmp_path, monkeypatch):
    source = write_sources(tmp_path / "src")
    target = tmp_path / "out"
    pack_training_set(source, target, short_side=64, quality=80)
    rename = Path.rename

    def failing_rename(self, to):
        if Path(to) == target and ".replaced-" not in self.parent.name:  # the new copy's move only
            raise OSError("disk gone")
        return rename(self, to)

    monkeypatch.setattr(Path, "rename", failing_rename)
    with pytest.raises(OSError, match="disk gone"):
        pack_training_set(source, target, short_side=32, quality=80, force=True)
    assert min(Image.open(target / "large.jpg.webp").size) == 64 and len(list_images(target)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no staging or set-aside folder left


def test_pack_rejects_bad_settings(tmp_path):
    source = write_sources(tmp_path / "src")
    with pytest.raises(ValueError, match="quality"):
        pack_training_set(source, tmp_path / "out", short_side=64, quality=101)
    with pytest.raises(ValueError, match="short_side"):
        pack_training_set(source, tmp_path / "out", short_side=4, quality=80)
    assert not (tmp_path / "out").exists()


def test_pack_data_command_reports_sizes_and_errors_clearly(tmp_path):
    source = write_sources(tmp_path / "src")
    result = CliRunner().invoke(main, ["pack-data", str(source), str(tmp_path / "out"), "--short-side", "64"])
    assert result.exit_code == 0, result.output
    assert "packed 4 images" in result.output
    again = CliRunner().invoke(main, ["pack-data", str(source), str(tmp_path / "out")])
    assert again.exit_code == 1 and "--force" in again.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = CliRunner().invoke(main, ["pack-data", str(empty), str(tmp_path / "out2")])
    assert nothing.exit_code == 1 and "no .jpg/.png/.webp images" in nothing.output
    assert not (tmp_path / "out2").exists()
