"""The watermark: stored documents of any shape cost at most a full read."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from ingestion.watermark import FileStorage, Watermark

TODAY = datetime.date(2026, 12, 4)


def stored(path: Path, document: object) -> FileStorage:
    path.write_text(json.dumps(document))
    return FileStorage(path)


def document(last_days: object) -> dict[str, object]:
    return {"target": "t", "measurement": "m", "last_days": last_days}


@pytest.mark.parametrize(
    "content",
    [
        document({"AAPL": "2024-13-01"}),
        document({"AAPL": None}),
        document({"AAPL": 20240101}),
        document([]),
        [],
        "x",
        document({"AAPL": "2099-01-01"}),
    ],
)
def test_unusable_watermark_is_dropped(tmp_path: Path, content: object) -> None:
    storage = stored(tmp_path / "wm.json", content)

    watermark = Watermark.load(storage, "t", "m", TODAY)
    watermark.advance("7203.T", datetime.date(2024, 12, 24))
    watermark.save()

    assert watermark.get("AAPL") is None
    saved = json.loads((tmp_path / "wm.json").read_text())
    assert saved["last_days"] == {"7203.T": "2024-12-24"}


def test_good_entries_survive_a_bad_one(tmp_path: Path) -> None:
    storage = stored(tmp_path / "wm.json", document({"AAPL": "bad", "9984.T": "2024-12-20"}))

    watermark = Watermark.load(storage, "t", "m", TODAY)

    assert watermark.get("9984.T") == datetime.date(2024, 12, 20)
    assert watermark.get("AAPL") is None


def test_save_keeps_later_day_stored_by_another_run(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path / "wm.json")
    first = Watermark.load(storage, "t", "m", TODAY)
    second = Watermark.load(storage, "t", "m", TODAY)
    first.advance("7203.T", datetime.date(2024, 12, 24))
    second.advance("7203.T", datetime.date(2024, 12, 20))
    second.advance("9984.T", datetime.date(2024, 12, 24))

    first.save()
    second.save()

    saved = json.loads((tmp_path / "wm.json").read_text())
    assert saved["last_days"] == {"7203.T": "2024-12-24", "9984.T": "2024-12-24"}
