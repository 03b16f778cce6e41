"""Fixtures of the unit tier."""

import pytest

from sample_image import write_tiny_image


@pytest.fixture
def tiny_image(tmp_path):
    return write_tiny_image(tmp_path / "img")
