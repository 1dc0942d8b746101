"""The real Vosk engine (Korean stand-in model): rates, reuse, VAD, speakers, broken files.

The Korean model writes Hangul for Mandarin audio, so these tests check mechanics a user relies on
(timed words inside the recording, same words whatever the padding, 8 and 16 kHz), not accuracy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr import audio, engine, jobs
from asr.vad import VadParams

CLIP = "wenetspeech_net_Y0000000000.wav"  # 1.8 s of speech: the shortest clip the Korean model hears words in


def _words_inside(t: engine.Transcript) -> None:
    assert t.words, "no words recognised"
    for w in t.words:
        assert 0 <= w["start"] <= w["end"] <= t.duration + 0.05
        assert 0 < w["conf"] <= 1
        assert t.text[w["char_start"]:w["char_end"]] == w["word"]
    starts = [w["start"] for w in t.words]
    assert starts == sorted(starts)


@pytest.mark.parametrize("folder,rate", [("real", 16000), ("real_8k", 8000)])
def test_speech_at_its_own_rate_gives_timed_words(backend: engine.VoskBackend, speech_dir: Path,
                                                  folder: str, rate: int) -> None:
    rec = audio.read(speech_dir / folder / CLIP)
    assert rec.sample_rate == rate
    t = engine.transcribe(backend, engine.tracks_of(rec.channels, rec.sample_rate))
    assert t.duration == pytest.approx(1.8, abs=0.01)
    assert t.engine == "vosk:model"
    _words_inside(t)
    assert [s["speaker"] for s in t.segments] == ["mixed"] * len(t.segments)


def test_a_reused_recognizer_gives_the_same_words_and_times_as_the_first_call(
        backend: engine.VoskBackend, speech_dir: Path) -> None:
    rec = audio.read(speech_dir / "real" / CLIP)
    tracks = engine.tracks_of(rec.channels, rec.sample_rate)
    first = engine.transcribe(backend, tracks)
    again = engine.transcribe(backend, tracks)  # same warm recognizer: Vosk's clock keeps running
    assert [(w["word"], w["start"], w["end"]) for w in again.words] == \
        [(w["word"], w["start"], w["end"]) for w in first.words]


def test_vad_skips_long_silence_and_keeps_words_at_their_place(backend: engine.VoskBackend,
                                                               speech_dir: Path) -> None:
    # A clip on which the Korean model is stable (on most Mandarin clips its guesses drift with any
    # change of context, which says nothing about VAD).
    rec = audio.read(speech_dir / "synthetic_8k" / "survey_manyi_1.wav")
    plain = engine.transcribe(backend, engine.tracks_of(rec.channels, rec.sample_rate))
    padded = audio.pad_silence(rec.channels[0], rec.sample_rate, 6.0, 4.0)
    track = [engine.Track("mixed", padded, rec.sample_rate)]
    with_vad = engine.transcribe(backend, track, vad=VadParams())
    assert with_vad.duration == pytest.approx(11.58, abs=0.01)
    assert with_vad.decoded_seconds < 2.5  # 10 s of silence never reached the decoder
    # Vosk adapts (i-vectors) across calls on a warm recognizer, so with this foreign-language model a
    # word may differ from one decode to the next; where the words are is what VAD must not change.
    assert abs(len(with_vad.words) - len(plain.words)) <= 1 and with_vad.words
    assert with_vad.words[0]["start"] == pytest.approx(plain.words[0]["start"] + 6.0, abs=0.15)
    assert with_vad.words[-1]["end"] == pytest.approx(plain.words[-1]["end"] + 6.0, abs=0.15)


def test_asterisk_recording_and_a_stereo_call_give_per_speaker_segments(
        backend: engine.VoskBackend, asterisk_recording: Path, speech_dir: Path, tmp_path: Path) -> None:
    rec = audio.read(asterisk_recording)
    assert (rec.sample_rate, len(rec.channels)) == (8000, 1)
    mixed = engine.transcribe(backend, engine.tracks_of(rec.channels, rec.sample_rate), vad=VadParams())
    assert mixed.duration == pytest.approx(11.9, abs=0.01)
    _words_inside(mixed)
    # A MixMonitor "D" (interleaved) recording: caller on the left, agent on the right.
    caller = audio.read(speech_dir / "real_8k" / CLIP).channels[0]
    agent = np.zeros(len(caller) + 16000, np.int16)
    agent[16000:] = caller  # the agent speaks the same words two seconds later
    caller = np.concatenate([caller, np.zeros(16000, np.int16)])
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([caller, agent], axis=1), 8000, subtype="PCM_16")
    tracks, _duration = jobs.recording_tracks(str(path), None)
    assert [t.speaker for t in tracks] == ["caller", "agent"]
    t = engine.transcribe(backend, tracks, vad=VadParams())
    by_speaker = {s["speaker"]: s for s in t.segments}
    assert set(by_speaker) == {"caller", "agent"}
    assert by_speaker["agent"]["start"] == pytest.approx(by_speaker["caller"]["start"] + 2.0, abs=0.15)
    assert t.segments[0]["speaker"] == "caller"


def test_broken_recordings_fail_with_a_reason(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20)
    with pytest.raises(audio.AudioError) as err:
        audio.read(corrupt)
    assert err.value.permanent and "corrupt.wav" in str(err.value)
    with pytest.raises(audio.AudioError) as missing:
        audio.read(tmp_path / "not-yet-written.wav")
    assert not missing.value.permanent  # MixMonitor may still be writing it: worth another try
    with pytest.raises(engine.ModelError):
        engine.VoskBackend(tmp_path)


def test_odd_rates_are_resampled_once_and_8k_stays_8k(tmp_path: Path, speech_dir: Path) -> None:
    rec = audio.read(speech_dir / "real" / CLIP)
    odd = audio.resample(rec.channels[0], 16000, 11025)
    sf.write(tmp_path / "odd.wav", odd, 11025, subtype="PCM_16")
    again = audio.read(tmp_path / "odd.wav")
    assert again.sample_rate == 16000 and again.duration == pytest.approx(rec.duration, abs=0.01)
    assert audio.read(speech_dir / "real_8k" / CLIP).sample_rate == 8000  # never upsampled by us


def test_model_check_finds_missing_files_and_wrong_checksums(tmp_path: Path, ko_model: Path) -> None:
    assert engine.verify_model(ko_model) == []
    fake = tmp_path / "vosk-model-small-cn-0.22"
    for rel in engine.MODEL_LAYOUT + ("graph/HCLr.fst", "graph/Gr.fst"):
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_bytes(b"truncated download")
    problems = engine.verify_model(fake)
    assert len(problems) == 4 and all("校验和不符" in p for p in problems)
    (fake / "am" / "final.mdl").unlink()
    assert "缺少 am/final.mdl" in engine.verify_model(fake)
