"""The README's run command: one job end to end on embedded defaults."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra_args", [[], ["--cloud-tasks"]])
def test_demo_completes_on_sample_data(tmp_path: Path, extra_args: list[str]) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "INFLUX_URL", "MARKET_DATA_DIR", "INGEST_API_TOKEN"}
    }
    env["KABOOM_STATE_DIR"] = str(tmp_path)

    completed = subprocess.run(
        [sys.executable, "-m", "app.demo", *extra_args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "completed 100%" in completed.stdout
    written = re.search(r"^bars written: (\d+)", completed.stdout, re.MULTILINE)
    assert written is not None, completed.stdout
    lines = (tmp_path / "points.lp").read_text().splitlines()
    assert len(lines) == int(written.group(1))
    assert (tmp_path / "redis").is_dir()
