"""Check a published HLS version: everything its playlists name is stored."""

from __future__ import annotations

from media.playlist import resolve, uris
from media.storage import KeyNotFound, Storage


def referenced_files(storage: Storage, master_key: str) -> tuple[list[str], list[str]]:
    """(stored, missing) keys named by a master playlist and, in turn, by its variant playlists."""
    stored: list[str] = []
    missing: list[str] = []
    todo, seen = [master_key], set()
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        try:
            text = storage.read_bytes(key).decode("utf-8")
        except KeyNotFound:
            missing.append(key)
            continue
        stored.append(key)
        assert text.startswith("#EXTM3U"), key
        for uri in uris(text):
            target = resolve(key, uri)
            assert target is not None, f"{key} names {uri}, outside the store"
            if target.endswith(".m3u8"):
                todo.append(target)
            elif storage.exists(target):
                stored.append(target)
            else:
                missing.append(target)
    return stored, missing


def assert_complete(storage: Storage, master_key: str) -> list[str]:
    """Assert every file the version names is stored (a master, variants, segments); the keys."""
    stored, missing = referenced_files(storage, master_key)
    assert missing == [], f"{master_key} names files that are not stored: {missing}"
    assert any(key.endswith(".ts") for key in stored), stored
    assert sum(key.endswith(".m3u8") for key in stored) >= 2, stored
    return stored
