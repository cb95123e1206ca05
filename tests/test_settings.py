"""Remembered settings: atomic, merged, and never a crash when the file is damaged."""
from core import settings


def test_dataset_roots_are_remembered_and_merged(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_DATA_DIR", str(tmp_path))
    assert settings.dataset_roots() == {}
    settings.remember_dataset_root("pneumoniamnist", tmp_path / "a")
    settings.remember_dataset_root("folder", tmp_path / "b")
    settings.remember_dataset_root("pneumoniamnist", tmp_path / "c")
    assert settings.dataset_roots() == {"pneumoniamnist": str(tmp_path / "c"), "folder": str(tmp_path / "b")}
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no temporary file left behind


def test_a_damaged_settings_file_is_ignored_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_DATA_DIR", str(tmp_path))
    for bad in ("{not json", "[1, 2]", '{"dataset_roots": 5}'):
        (tmp_path / "settings.json").write_text(bad)
        assert settings.dataset_roots() == {}
    settings.remember_dataset_root("folder", tmp_path)
    assert settings.dataset_roots() == {"folder": str(tmp_path)}
