"""Chinese accuracy, only with a real Chinese model at $VOSK_MODEL_PATH (default
../shared/models/vosk-model-small-cn-0.22); skipped, saying so, everywhere else.

Bounds: upstream publishes CER 23.5 % (speechio_02) and 38.3 % (speechio_06) for small-cn-0.22. Read
speech (AISHELL, the read Fun-ASR clips) should do at least as well as the easier figure, telephone-band
8 kHz somewhat worse. These bounds could not be checked here (no model): tighten them once measured.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from asr_testdata import references

from asr import audio, cer, drafts, engine
from asr.vad import VadParams

READ_SPEECH = ("aishell1_", "funasr_rag_")


@pytest.fixture(scope="module")
def cn_backend(cn_model: Path) -> engine.VoskBackend:
    return engine.VoskBackend(cn_model)


@pytest.mark.parametrize("folder,bound", [("real", 0.30), ("real_8k", 0.40)])
def test_cer_on_read_speech_is_within_bound(cn_backend: engine.VoskBackend, speech_dir: Path,
                                            folder: str, bound: float) -> None:
    refs = references(speech_dir)
    pairs = []
    for path in sorted((speech_dir / folder).glob("*.wav")):
        if not path.name.startswith(READ_SPEECH):
            continue
        rec = audio.read(path)
        t = engine.transcribe(cn_backend, engine.tracks_of(rec.channels, rec.sample_rate), vad=VadParams())
        pairs.append((refs[f"{folder}/{path.name}"], t.text))
    total = cer.total(pairs)
    print(f"\nCER {folder} read speech: {total.cer:.3f} over {total.length} characters")
    assert total.cer <= bound


def test_spoken_phone_number_reaches_the_draft(cn_backend: engine.VoskBackend, speech_dir: Path) -> None:
    rec = audio.read(speech_dir / "synthetic" / "hotline_11_phone.wav")
    t = engine.transcribe(cn_backend, engine.tracks_of(rec.channels, rec.sample_rate), vad=VadParams())
    fields = drafts.extract(t.text, t.words)
    # espeak's robotic voice: accept a number with at most two wrong digits, but it must be found
    got = fields.get("caller_phone", {}).get("value", "")
    assert len(got) == 11 and sum(a != b for a, b in zip(got, "13800138000")) <= 2, t.text
