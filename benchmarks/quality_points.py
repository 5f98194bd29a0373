"""Choose a model's quality points: the (stage count, rdo strength) pairs `-q 0..100` steps
through (`vqcodec.zoo.ZooEntry.quality_points`), from a `benchmarks/rdo.py` run on training
images whose profiles include the model's λ at every strength of `QUALITY_RDO_STRENGTHS`:

    python benchmarks/rdo.py ../shared/data/train --limit 48 --profiles 0 0.04 0.05 model 0.12 0.16 \\
        --out benchmarks/results/rdo/train
    python benchmarks/quality_points.py benchmarks/results/rdo/train/rdo.json --out benchmarks/results/quality

Every stage count at every strength is a candidate; the points kept are those no other
candidate beats in both bits and PSNR, in order of bits, so both rise with quality. A point
that another beats in PSNR for at most `--margin` (2 %) more bits is left out too: the step
between them is poor, and on other images the two may swap places in bits. With
`--check` (an rdo.py run on other images with the same profiles, e.g. Kodak) it reports
whether the kept points still rise there. Writes `quality.json` and `quality.png` into
`--out`, and prints the tuple for the zoo entry.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plotting import save_figure
from vqcodec import zoo
from vqcodec.api import QUALITY_RDO_STRENGTHS


def candidates(report: dict, strengths: tuple[float, ...]) -> dict[tuple[int, float], tuple[float, float]]:
    """(stage count, strength) → (bpp, PSNR) under the context prior, for every strength, from
    the rdo.py profiles that are the model's λ scaled by it."""
    model_lambdas = zoo.MODELS[report["model"]].rdo_lambdas
    points = {}
    for strength in strengths:
        wanted = [round(strength * value, 9) for value in model_lambdas]
        profile = next((p for p in report["profiles"] if [round(v, 9) for v in p["lambdas"]] == wanted), None)
        if profile is None:
            raise SystemExit(f"no profile with λ {wanted} (strength {strength:g}) in the rdo.py run")
        for count, (bpp, psnr) in enumerate(zip(profile["context"], profile["psnr"], strict=True), start=1):
            points[(count, strength)] = (bpp, psnr)
    return points


def upper_envelope(points: dict[tuple[int, float], tuple[float, float]], margin: float = 0.0) -> list[tuple[int, float]]:
    """The points that no other beats in both fewer bits and higher PSNR, nor in higher PSNR
    for at most `margin` more bits (relative), fewest bits first."""
    near_beaten = {
        p for p in points if any(points[q][1] > points[p][1] and points[q][0] <= points[p][0] * (1 + margin) for q in points)
    }
    kept: list[tuple[int, float]] = []
    for point in sorted(set(points) - near_beaten, key=lambda key: points[key]):
        if not kept or points[point][1] > points[kept[-1]][1]:
            kept.append(point)
    return kept


def rises(points: dict[tuple[int, float], tuple[float, float]], chosen: list[tuple[int, float]]) -> dict:
    """Whether bpp and PSNR rise strictly through `chosen` on `points`' images, and where not."""
    pairs = list(zip(chosen, chosen[1:]))
    return {
        "bpp_rises": all(points[a][0] < points[b][0] for a, b in pairs),
        "psnr_rises": all(points[a][1] < points[b][1] for a, b in pairs),
        "falls": [[list(a), list(b)] for a, b in pairs if not (points[a][0] < points[b][0] and points[a][1] < points[b][1])],
    }


def plot(points: dict, chosen: list[tuple[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for i, strength in enumerate(sorted({s for _, s in points}, reverse=True)):
        row = sorted((count, *points[(count, s)]) for count, s in points if s == strength)
        axis.plot(
            [r[1] for r in row],
            [r[2] for r in row],
            color=f"C{i}",
            marker="o",
            ms=4,
            lw=0.8,
            alpha=0.6,
            label=f"strength {strength:g}",
        )
    axis.plot(
        [points[p][0] for p in chosen],
        [points[p][1] for p in chosen],
        "k-",
        lw=1.5,
        marker="x",
        label=f"quality points ({len(chosen)})",
    )
    axis.set_xlabel("bits per pixel (stage payloads)")
    axis.set_ylabel("PSNR (dB), fidelity decoder")
    axis.set_title(title)
    save_figure(figure, [axis], path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rdo_json", type=Path, help="rdo.py's report on training images")
    parser.add_argument("--check", type=Path, help="rdo.py's report on other images, with the same profiles")
    parser.add_argument("--margin", type=float, default=0.02, help="relative bits within which a better point beats another")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    args = parser.parse_args()
    report = json.loads(args.rdo_json.read_text())
    points = candidates(report, QUALITY_RDO_STRENGTHS)
    chosen = upper_envelope(points, args.margin)
    result = {
        "model": report["model"],
        "chosen_on": f"{report['images']} ({report['image_count']} images)",
        "strengths": list(QUALITY_RDO_STRENGTHS),
        "margin": args.margin,
        "quality_points": [list(p) for p in chosen],
        "left_out": [list(p) for p in sorted(set(points) - set(chosen))],
        "candidates": [{"stages": c, "strength": s, "bpp": b, "psnr": q} for (c, s), (b, q) in sorted(points.items())],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(points, chosen, args.out / "quality.png", f"{report['model']}: quality points on {result['chosen_on']}")
    if args.check:
        check = json.loads(args.check.read_text())
        checked = candidates(check, QUALITY_RDO_STRENGTHS)
        result["check"] = {"images": f"{check['images']} ({check['image_count']} images)", **rises(checked, chosen)}
        title = f"{report['model']}: the same points on {result['check']['images']}"
        plot(checked, chosen, args.out / "quality-check.png", title)
    (args.out / "quality.json").write_text(json.dumps(result, indent=1))
    print(f"{len(chosen)} of {len(points)} points kept; left out: {result['left_out']}")
    if args.check:
        outcome = result["check"]
        print(f"on {outcome['images']}: bpp rises {outcome['bpp_rises']}, PSNR rises {outcome['psnr_rises']}")
    print("quality_points=(" + ", ".join(f"({c}, {s:g})" for c, s in chosen) + "),")


if __name__ == "__main__":
    main()
