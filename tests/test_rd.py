"""Rate–distortion benchmark: BD maths, and end-to-end runs on tiny generated images."""

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqcodec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import rd
from rd_bd import bd_quality, bd_rate, bd_rates_against, committed_curves, psnr_ahead, quality_at_rates
from rd_reference import load_reference
from rd_report import bd_table, same_rate_rows

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]


def _quality(rates: list[float]) -> list[float]:
    """A concave, increasing PSNR-like curve of the rate."""
    return [30 + 6 * math.log2(r) - 0.3 * math.log2(r) ** 2 for r in rates]


def test_committed_curves_are_read_by_name_and_a_missing_codec_is_left_out(tmp_path):
    curve = {"bpp": [0.2, 0.4, 0.8, 1.6], "psnr": [28.0, 31.0, 34.0, 37.0]}
    (tmp_path / "webp.json").write_text(json.dumps({"name": "WebP", "results": {**curve, "ms-ssim": [0.9] * 4}}))
    curves = committed_curves(tmp_path)
    assert curves == {"webp": curve}
    # The same PSNR at half the bits is a BD-rate of −50 %.
    halved = bd_rates_against(curves, [b / 2 for b in curve["bpp"]], curve["psnr"])
    assert halved["webp"] == pytest.approx(-50.0, abs=0.01)


def test_model_change_sets_both_models_against_the_other_codecs(tmp_path):
    from model_change import compare, plot

    def curve(name: str, scale: float) -> dict:
        rates = [scale * r for r in RATES]
        return {"name": name, "description": name, "bpp": rates, "psnr": _quality(RATES), "ms-ssim": [0.9] * 5}

    webp = {"bpp": RATES, "psnr": _quality(RATES)}
    previous, current = curve("old", 1.25), curve("new", 0.8)
    against = compare(previous, current, {"webp": webp})["bd_rate_psnr_percent_vs"]
    assert against["previous"]["webp"] == pytest.approx(25.0, abs=1e-6)
    assert against["current"]["webp"] == pytest.approx(-20.0, abs=1e-6)
    assert compare(previous, current, {})["bd_rate_psnr_percent_vs"] == {"previous": {}, "current": {}}
    # A compared curve wholly past the models' rates is left off the plot, not drawn empty.
    plot({"fidelity": (previous, current)}, {"webp": webp, "far": {"bpp": [9.0, 10.0], "psnr": [40.0, 41.0]}}, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_psnr_ahead_at_the_same_bpp_and_none_outside_the_range():
    curve = {"bpp": [0.2, 0.4, 0.8], "psnr": [28.0, 31.0, 34.0]}
    ahead = psnr_ahead(curve, [0.4, 0.8, 1.6], [31.5, 33.8, 40.0])
    assert ahead[:2] == [pytest.approx(0.5), pytest.approx(-0.2)]
    assert ahead[2] is None


def test_bd_rate_of_a_curve_needing_20_percent_fewer_bits():
    test_rates = [0.8 * r for r in RATES]
    assert bd_rate(RATES, _quality(RATES), test_rates, _quality(RATES)) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(test_rates, _quality(RATES), RATES, _quality(RATES)) == pytest.approx(25.0, abs=1e-6)


def test_bd_psnr_of_a_curve_half_a_db_better_on_a_partial_overlap():
    test_rates = [0.3, 0.5, 0.9, 1.4, 2.5, 4.0]  # overlaps the anchor only between 0.3 and 1.6 bpp
    test_quality = [q + 0.5 for q in _quality(test_rates)]
    assert bd_quality(RATES, _quality(RATES), test_rates, test_quality) == pytest.approx(0.5, abs=1e-3)


def test_bd_is_undefined_without_overlap_or_for_non_monotone_curves():
    assert bd_rate(RATES, _quality(RATES), RATES, [q + 30 for q in _quality(RATES)]) is None
    assert bd_rate(RATES, _quality(RATES), RATES, [30, 31, 30.5, 32, 33]) is None


def test_bd_is_undefined_when_the_curves_share_only_a_thin_slice():
    # 15 dB above the anchor, the test curve overlaps it only in its bottom part.
    test_quality = [q + 15 for q in _quality(RATES)]
    low, high = _quality(RATES)[0], _quality(RATES)[-1]
    assert (high - (low + 15)) / (high - low) < 0.5
    assert bd_rate(RATES, _quality(RATES), RATES, test_quality) is None
    assert bd_rate(RATES, _quality(RATES), RATES, [q + 3 for q in _quality(RATES)]) is not None


def test_same_rate_rows_without_ms_ssim_leave_the_verdict_open():
    anchor = {"codec": "jpeg", "label": "JPEG", "results": {"bpp": [0.2, 0.5], "psnr": [25.0, 28.0], "ms-ssim": [None, None]}}
    test = {"codec": "vqcodec", "label": "vqcodec", "settings": [1], "results": {"bpp": [0.3], "psnr": [27.0], "ms-ssim": [None]}}
    (row,) = same_rate_rows({"jpeg": anchor, "vqcodec": test})
    assert row["psnr_ahead"] is True and row["anchor_ms-ssim"] is None and row["ms-ssim_ahead"] is None


def test_interpolation_passes_through_the_measured_points_and_stays_monotone():
    rates, quality = [0.1, 0.2, 0.4, 0.8], [25.0, 27.0, 27.5, 30.0]
    assert quality_at_rates(rates, quality, rates) == pytest.approx(quality)
    between = quality_at_rates(rates, quality, list(np.geomspace(0.1, 0.8, 50)))
    assert np.all(np.diff(between) >= 0)  # monotone data, monotone curve
    assert quality_at_rates(rates, quality, [0.05, 1.0]) == [None, None]


def test_committed_kodak_bd_figures_reproduce_to_their_printed_precision():
    results = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "kodak"
    reference = Path(__file__).resolve().parent.parent / "benchmarks" / "reference" / "compressai_kodak.csv"
    committed = json.loads((results / "rd.json").read_text())
    curves = {name: json.loads((results / file).read_text()) for name, file in committed["curves"].items()}
    for row, again in zip(committed["bd"], bd_table(curves, load_reference(reference)), strict=True):
        assert (row["test"], row["anchor"]) == (again["test"], again["anchor"])
        for key, digits in (("bd_rate_psnr_percent", 1), ("bd_psnr_db", 2), ("bd_rate_ms_ssim_percent", 1)):
            assert (row[key] is None) == (again[key] is None)
            if row[key] is not None:
                assert round(row[key], digits) == round(again[key], digits), (row["test"], row["anchor"], key)


def _write_tiny_images(folder: Path) -> None:
    folder.mkdir()
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1)
    texture = (smooth + 40 * ((xx // 3 + yy // 3) % 2)[..., None]) % 256
    Image.fromarray(smooth.astype(np.uint8)).save(folder / "a.png")
    Image.fromarray(texture.astype(np.uint8)[:40, :56]).save(folder / "b.png")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_benchmark_with_two_codecs_writes_wellformed_outputs(tmp_path):
    _write_tiny_images(tmp_path / "tiny")
    assert rd.main([str(tmp_path / "tiny"), "--codecs", "jpeg,webp", "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    index = _load(out / "rd.json")
    assert index["images"] == 2 and index["codecs"] == ["jpeg", "webp"] and index["bd"] == []
    assert index["ms_ssim_scales"] == [2, 3]  # 40 and 48 px images cannot use 5 scales
    for name in ("jpeg", "webp"):
        curve = _load(out / f"{name}.json")
        results = curve["results"]
        assert set(results) >= {"bpp", "psnr", "ms-ssim", "haarpsi", "encoding_time", "decoding_time"}
        assert all(len(v) == len(curve["settings"]) for v in results.values())
        assert len(curve["per_image"]) == 2 * len(curve["settings"])
        assert results["bpp"] == sorted(results["bpp"]) and results["psnr"][-1] > results["psnr"][0]
        row = curve["per_image"][0]
        assert row["bpp"] == pytest.approx(8 * row["bytes"] / (48 * 64))
    for name in ("rd_psnr.png", "rd_ms-ssim.png", "rd_haarpsi.png", "table.md", "summary.md"):
        assert (out / name).stat().st_size > 0


def _jpeg_backed_vqcodec(monkeypatch):
    """Stand in for the vqcodec API (as the package and the evaluation library see it): each
    stage raises the JPEG quality."""
    import vqcodec.evaluate

    def compress(image, *, stages=None, model=None, **options):
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image)).save(buffer, format="JPEG", quality=5 + 20 * (stages or 4))
        return buffer.getvalue()

    def decompress(data, *, stages=None, decoder="fidelity", **options):
        return Image.open(io.BytesIO(data)).convert("RGB")

    info = {"name": "fake", "stages": 3, "decoders": ["fidelity", "realism"], "stride": 8, "codebook_size": 16}
    for module in (vqcodec, vqcodec.evaluate):
        monkeypatch.setattr(module, "compress", compress, raising=False)
        monkeypatch.setattr(module, "decompress", decompress, raising=False)
        monkeypatch.setattr(module, "model_info", lambda model=None: info, raising=False)


def test_benchmark_covers_every_vqcodec_stage_and_decoder(tmp_path, monkeypatch):
    _jpeg_backed_vqcodec(monkeypatch)
    _write_tiny_images(tmp_path / "tiny")
    out = tmp_path / "out"
    rd.main([str(tmp_path / "tiny"), "--codecs", "vqcodec,webp", "--out", str(out), "--crop", "32"])
    index = _load(out / "rd.json")
    assert sorted(index["curves"]) == ["vqcodec-fidelity", "vqcodec-realism", "webp"]
    assert _load(out / "vqcodec-realism.json")["settings"] == [1, 2, 3]
    assert {(row["test"], row["anchor"]) for row in index["bd"]} == {
        ("vqcodec (fidelity)", "WebP"),
        ("vqcodec (realism)", "WebP"),
    }
    assert all(row["bd_psnr_db"] is not None for row in index["bd"])
    assert Image.open(out / "side_by_side.png").mode == "RGB"  # no all-opaque alpha channel


def test_a_rerun_removes_the_curves_and_picture_it_does_not_replace(tmp_path, monkeypatch):
    _jpeg_backed_vqcodec(monkeypatch)
    _write_tiny_images(tmp_path / "tiny")
    out = tmp_path / "out"
    rd.main([str(tmp_path / "tiny"), "--codecs", "vqcodec,webp", "--out", str(out), "--crop", "32", "--limit", "1"])
    (out / "notes.txt").write_text("kept")
    rd.main([str(tmp_path / "tiny"), "--codecs", "webp,jpeg", "--out", str(out), "--limit", "1"])
    assert sorted(_load(out / "rd.json")["curves"]) == ["jpeg", "webp"]
    assert sorted(committed_curves(out)) == ["jpeg", "webp"]  # no stale vqcodec curve to compare against
    assert not (out / "side_by_side.png").exists() and (out / "notes.txt").read_text() == "kept"


def test_unavailable_codec_is_skipped_with_a_reason(tmp_path, monkeypatch):
    def broken(model=None):
        raise FileNotFoundError("no weights for model 'missing'")

    monkeypatch.setattr(vqcodec, "model_info", broken, raising=False)
    _write_tiny_images(tmp_path / "tiny")
    rd.main([str(tmp_path / "tiny"), "--codecs", "vqcodec,jpeg", "--out", str(tmp_path / "out"), "--limit", "1"])
    index = _load(tmp_path / "out" / "rd.json")
    assert index["codecs"] == ["jpeg"] and "no weights" in index["skipped"]["vqcodec"]


def test_entropy_constrained_search_trades_distortion_for_code_length():
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments" / "entropy-constrained"))
    from entropy_constrained import fit_code_bits, quantize

    torch.manual_seed(0)
    books = [torch.randn(8, 3), torch.randn(8, 3) * 0.1]
    vectors = torch.randn(50, 3)
    plain = quantize(books, vectors, [torch.zeros(8)] * 2, [0.0, 0.0])
    nearest = torch.cdist(vectors, books[0]).argmin(1)
    assert torch.equal(plain[0], nearest)  # weight 0: the codec's own nearest-codeword choice
    bits = [torch.full((8,), 3.0), torch.full((8,), 3.0)]
    bits[1][5] = 0.1  # one cheap codeword in stage 2
    constrained = quantize(books, vectors, bits, [0.0, 100.0])
    assert torch.equal(constrained[0], plain[0]) and (constrained[1] == 5).all()
    fitted = fit_code_bits([constrained], 8)
    assert fitted[1][5] < fitted[1][0]  # the refit makes the chosen codeword cheaper still


def test_same_rate_anchor_follows_its_concave_curve_not_straight_lines():

    jpeg_bpp = [0.2, 0.4, 0.8, 1.6]
    jpeg_psnr = [24.0 + 3.0 * math.log2(b / 0.2) for b in jpeg_bpp]  # straight in log-rate, concave in bpp
    curves = {
        "jpeg": {
            "codec": "jpeg",
            "label": "JPEG",
            "settings": [10, 30, 60, 90],
            "results": {"bpp": jpeg_bpp, "psnr": jpeg_psnr, "ms-ssim": [0.8, 0.85, 0.9, 0.95]},
        },
        "vq": {
            "codec": "vqcodec",
            "label": "vqcodec",
            "settings": [1, 2],
            "results": {"bpp": [0.3, 2.0], "psnr": [25.5, 40.0], "ms-ssim": [0.84, 0.99]},
        },
    }
    rows = same_rate_rows(curves)
    expected = 24.0 + 3.0 * math.log2(0.3 / 0.2)  # 25.75; a straight line in bpp would read 25.5
    assert rows[0]["anchor_psnr"] == pytest.approx(expected, abs=1e-9)
    assert rows[0]["psnr_ahead"] is False  # 25.5 is behind, though level with the linear estimate
    assert rows[1]["anchor_psnr"] is None  # outside the anchor's range


def test_sixteen_bit_sources_are_noted_in_the_results(tmp_path):
    from rd_measure import load_images

    tmp_path.joinpath("set").mkdir()
    Image.fromarray(np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80).save(tmp_path / "set" / "deep.png")
    images, notes = load_images(tmp_path / "set")
    assert images["deep.png"].dtype == np.uint8
    assert any("deep.png" in note and "16-bit" in note for note in notes)


def test_quality_points_keep_only_those_no_other_beats_in_bits_and_psnr():
    from quality_points import rises, upper_envelope

    points = {(1, 2.0): (0.1, 25.0), (1, 0.0): (0.2, 26.0), (2, 2.0): (0.19, 25.9), (2, 0.0): (0.3, 25.95), (3, 0.0): (0.4, 27.0)}
    chosen = upper_envelope(points)
    assert chosen == [(1, 2.0), (2, 2.0), (1, 0.0), (3, 0.0)]  # (2, 0.0): more bits than (1, 0.0), less PSNR
    assert rises(points, chosen) == {"bpp_rises": True, "psnr_rises": True, "falls": []}
    assert rises(points, [(1, 0.0), (2, 0.0)])["falls"] == [[[1, 0.0], [2, 0.0]]]
    # (2, 2.0) gives 0.1 dB less than (1, 0.0) for 5 % fewer bits: inside a 6 % margin, it goes
    assert upper_envelope(points, margin=0.06) == [(1, 2.0), (1, 0.0), (3, 0.0)]


def test_the_shipped_quality_points_are_those_the_committed_benchmark_chose():
    from vqcodec import zoo

    chosen = json.loads((Path(__file__).resolve().parent.parent / "benchmarks/results/quality/quality.json").read_text())
    entry = zoo.MODELS[zoo.DEFAULT_MODEL]
    assert chosen["model"] == zoo.DEFAULT_MODEL
    assert [list(point) for point in entry.quality_points] == chosen["quality_points"]
