"""Uploads on disk: owner-only, whole, and recorded as their key's."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from serving.batch.files import save_upload, upload_path
from serving.batch.store import FileNotFound, FileStore
from tests.helpers.stores import open_store


async def test_uploads_and_their_directory_are_owner_only(
    database_url: str, tmp_path: Path
) -> None:
    store = await open_store(FileStore, database_url)
    files_dir = tmp_path / "home" / "files"
    try:
        stored = await save_upload(
            store,
            files_dir,
            io.BytesIO(b"{}\n"),
            filename="in.jsonl",
            max_bytes=100,
            owner_key_id="alice",
        )
        assert (await store.get_file(stored.id, owned_by="alice")) == stored
        with pytest.raises(FileNotFound):
            await store.get_file(stored.id, owned_by="bob")
    finally:
        await store.database.close()
    assert stat.S_IMODE(files_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(upload_path(files_dir, stored).stat().st_mode) == 0o600
    assert upload_path(files_dir, stored).read_bytes() == b"{}\n"
