"""What the package ships besides code: version, licence, type marker, changelog, model card."""

from __future__ import annotations

import importlib.metadata
from importlib import resources
from pathlib import Path

import pytest

import vqcodec
from vqcodec import zoo

ROOT = Path(__file__).resolve().parent.parent


def test_version_comes_from_the_package_metadata():
    assert vqcodec.__version__ == importlib.metadata.version("vqcodec")
    assert "__version__" in vqcodec.__all__


def test_licence_and_type_marker_ship_with_the_package():
    tomllib = pytest.importorskip("tomllib")  # in the standard library from Python 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"]["text"] == "MIT"
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "the vqcodec authors" in licence
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["vqcodec"]
    assert resources.files("vqcodec").joinpath("py.typed").is_file()


def test_changelog_and_model_card_cover_every_model():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    card = (ROOT / "docs" / "models.md").read_text()
    assert all(f"`{name}`" in changelog for name in zoo.MODELS)
    assert "BSDS500" in card and "ImageNet" in card and "non-commercial" in card
