"""The packages list each run stores: the same names and versions `importlib.metadata` gives."""

from __future__ import annotations

from importlib import metadata

from rnnlab.tracking.runs import _header_fields, installed_packages


def test_installed_packages_match_what_importlib_metadata_parses() -> None:
    # The list is cached per process, and what importlib.metadata finds depends on sys.path:
    # importing ray adds its bundled psutil and colorama. Compare one fresh reading with another.
    installed_packages.cache_clear()
    expected = {
        f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]
    }
    listed = installed_packages().splitlines()
    assert set(listed) == expected
    assert listed == sorted(listed, key=str.lower)
    assert any(line.startswith("torch==") for line in listed)


def test_only_the_header_is_read_for_name_and_version() -> None:
    text = "Metadata-Version: 2.1\nName: demo\nVersion: 1.2\n\nName: not-me\nVersion: 9\n"
    assert _header_fields(text) == {"Name": "demo", "Version": "1.2"}
    assert _header_fields("") == {}
