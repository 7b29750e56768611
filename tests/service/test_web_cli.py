"""`superscale web`: binds to 127.0.0.1 by default, passes its caps to the app, and says
which extra to install when FastAPI or uvicorn is missing."""

from __future__ import annotations

import sys
from typing import Any

import pytest

uvicorn = pytest.importorskip("uvicorn")

from superscale.cli import main  # noqa: E402


def test_web_defaults_to_loopback_and_passes_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(app: Any, *, host: str, port: int, log_level: str) -> None:
        seen.update(app=app, host=host, port=port)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    assert main(["web", "--max-plans", "1234", "--port", "8123"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8123
    assert seen["app"].state.settings.max_plans == 1234


def test_web_without_the_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails
    assert main(["web"]) == 2
    err = capsys.readouterr().err
    assert "superscale web needs the [web] extra: pip install 'superscale[web]'" in err


def test_web_bad_backend_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["web", "--backend", "slurm"]) == 2
    assert "allowed: local, ray" in capsys.readouterr().err
