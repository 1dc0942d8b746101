"""The pure modules: no I/O frameworks imported, spoken numbers, CER, VAD regions, transcript assembly."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from asr import cer, engine, spoken_digits, vad

PURE = ["drafts.py", "spoken_digits.py", "cer.py", "vad.py", "audio.py", "engine.py"]
FORBIDDEN = {"asyncio", "aiohttp", "redis", "sqlalchemy", "arq", "panoramisk", "tickets", "telephony"}


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_io_framework_nor_other_packages(name: str) -> None:
    tree = ast.parse((Path(__file__).resolve().parents[2] / "asr" / name).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
    assert "datetime" not in imported or name == "models.py"  # no clock reads in the core


@pytest.mark.parametrize("text,expected", [
    ("我的电话号码是一三八零零一三八零零零", ["13800138000"]),
    ("电话 幺 三 八 零 零 幺 三 八 零 零 零 谢谢", ["13800138000"]),
    ("手机一五九两八七六五四三二", ["15928765432"]),
    ("座机零幺零六二三四五六七八", ["01062345678"]),
    ("您好一二三四五热线请讲", []),  # the hotline's own number is not the caller's
    ("工资拖欠了三个月，学院路十八号，十四度", []),
    ("2019年12月30日收费300元/月，规划（2015-2040）", []),
    ("联系电话：0000-00000000", []),  # masked
    ("电话0746-6233856或13912345678", ["13912345678", "07466233856"]),
])
def test_phone_numbers_said_aloud(text: str, expected: list[str]) -> None:
    found = spoken_digits.phone_numbers(text)
    assert sorted(n.digits for n in found) == sorted(expected)
    for n in found:
        assert text[n.start:n.end] == n.text
        assert spoken_digits.to_digits(n.text) == n.digits


def test_cer_strips_spaces_punctuation_and_unk() -> None:
    assert cer.cer("甚至出现交易几乎停滞的情况", "甚至 出现 交易 几乎 停滞 的 情况") == 0.0
    assert cer.cer("换一首歌", "换 一 首 [unk] 哥。") == pytest.approx(0.25)
    total = cer.total([("ab", "ab"), ("abcd", "")])
    assert (total.errors, total.length) == (4, 6)  # micro-average, not the mean of 0 and 1
    assert cer.cer("", "") == 0.0


def test_vad_regions_merge_short_gaps_and_pad() -> None:
    p = vad.VadParams(pad=0.2, min_silence=0.5, min_speech=0.06, frame_ms=30)
    flags = [False] * 10 + [True] * 10 + [False] * 5 + [True] * 10 + [False] * 60 + [True] * 3 + [False] * 10
    regions = vad.regions_from_flags(flags, 0.03, len(flags) * 0.03, p)
    # the 0.15 s gap is merged, the 1.8 s gap is skipped, each region padded by 0.2 s
    assert regions == [(0.1, 1.25), (2.65, 3.14)]
    assert vad.regions_from_flags([True] * 2, 0.03, 0.06, p) == [(0.0, 0.06)]
    # speech nearly everywhere: one stretch, no cut (cutting would cost accuracy and save nothing)
    flags = [True] * 90 + [False] * 40 + [True] * 90  # a 1.2 s pause in 6.6 s: cutting saves 12 %
    assert vad.regions_from_flags(flags, 0.03, 6.6, vad.VadParams(pad=0.2, min_silence=0.5, min_saving=0.2)) \
        == [(0.0, 6.6)]
    assert vad.regions_from_flags(flags, 0.03, 6.6, vad.VadParams(pad=0.2, min_silence=0.5, min_saving=0.1)) \
        == [(0.0, 2.9), (3.7, 6.6)]
    assert vad.regions_from_flags([False] * 100, 0.03, 3.0, p) == []


def test_transcript_assembly_orders_speakers_and_maps_characters_to_words() -> None:
    W = engine.Word
    caller = [[W("你好", 1.0, 1.4), W("路灯", 1.5, 1.9), W("坏", 2.0, 2.2), W("了", 2.2, 2.3)]]
    agent = [[W("您好", 0.1, 0.5), W("请讲", 0.6, 0.9)], [W("好的", 5.0, 5.4)]]
    t = engine.build_transcript([("caller", caller), ("agent", agent)], 6.0, "test")
    assert t.text == "您好请讲\n你好路灯坏了\n好的"
    assert [s["speaker"] for s in t.segments] == ["agent", "caller", "agent"]
    for w in t.words:
        assert t.text[w["char_start"]:w["char_end"]] == w["word"]
    assert engine.join_words(["안녕", "하세요"]) == "안녕 하세요"
    assert engine.join_words(["路灯", "LED", "坏"]) == "路灯 LED 坏"
