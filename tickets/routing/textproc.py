"""Chinese text for routing, duplicates and hot issues: normalising and tokenizing without mangling.

Words come from rjieba (jieba-rs, jieba's algorithm and dictionary in Rust): the same words as jieba's
HMM-free precise mode on all 468,023 blocks of the labelled and support messages, in a sixth of the CPU, and
a long letter (3,000 characters) was the whole p99 of a routing request. It is loaded once per process
(lazily, under a lock) and every caller shares it. HMM-free precise mode is deterministic, which tests and the
trained model rely on.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any, Iterable

_lock = threading.Lock()
_tokenizer: Any = None

# Hotline words jieba's general dictionary splits apart; keeping them whole makes the strongest
# routing evidence a single feature (and readable in the "reasons" shown to dispatchers).
HOTLINE_WORDS = (
    "12345", "接诉即办", "物业费", "停车费", "物业公司", "业委会", "业主委员会", "拖欠工资", "欠薪", "讨薪",
    "农民工", "社保卡", "医保卡", "养老保险", "医疗保险", "失业保险", "工伤认定", "公积金", "住房公积金",
    "廉租房", "公租房", "安置房", "拆迁款", "征地补偿", "违章建筑", "违建", "占道经营", "流动摊贩",
    "噪音扰民", "夜间施工", "施工噪音", "油烟扰民", "黑臭水体", "垃圾清运", "渣土车", "网约车", "出租车",
    "公交车", "共享单车", "学区房", "义务教育", "校外培训", "课外辅导", "幼儿园", "营业执照", "食品安全",
    "过期食品", "预付卡", "消费者权益", "二次供水", "水压低", "停水", "停电", "燃气费", "电梯故障",
    "商品房", "开发商", "延期交房", "不动产证", "房产证", "网签", "计划生育", "独生子女", "医疗纠纷",
    "疫苗接种", "环评", "排污", "扬尘", "非法采砂", "景区门票", "导游",
)

# Function words and hotline boilerplate that carry no routing signal; the organiser's tokenized
# data drops the same kind of words, so dropping them keeps raw and pre-tokenized text comparable.
STOP_WORDS = frozenset(
    "的 了 和 是 在 我 我们 你 你们 他 他们 她 它 这 那 这个 那个 这些 那些 有 也 就 都 而 及 与 或 一个 没有 "
    "不 把 被 让 给 对 从 到 为 以 于 之 其 吗 呢 吧 啊 呀 哦 嘛 着 过 还 又 很 非常 请问 请 您好 你好 "
    "尊敬 领导 谢谢 感谢 希望 能 能否 是否 可以 如何 怎么 什么 为什么 因为 所以 但是 但 如果 已经 现在 "
    "一直 问题 反映 情况 相关 部门 市民 本人 我家 我们家 政府 有关 进行 目前 今年 去年 时候 一下 多次 "
    "等 等等 该 此 并 且 即 则 所 啦 么 个 些 里 上 下 中 后 前".split()
)

_SPACE = re.compile(r"\s+")
# jieba.cut's split of a text into blocks (jieba.re_han_default), kept here so it is compiled once.
_BLOCKS = re.compile(r"([\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+)", re.U)
_block_cache: dict[str, list[str]] = {}
_KEEP = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaffA-Za-z0-9]")
# Everything but letters, digits and Han: punctuation, spaces, masked numbers (*****), emoji.
_NOISE = re.compile(r"[^0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _nfkc(text: str) -> str:
    # Most messages are already NFKC; the check is several times cheaper than normalising.
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def normalize(text: str | None) -> str:
    """NFKC (full-width letters and digits to half-width), lower case, whitespace collapsed."""
    if not text:
        return ""
    return _SPACE.sub(" ", _nfkc(text)).strip().lower()


def compact(text: str | None) -> str:
    """Letters, digits and Han characters only: the form used for character shingles."""
    return _NOISE.sub("", _nfkc(text).lower()) if text else ""


def _load() -> Any:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                import rjieba

                tok = rjieba.Jieba()
                for word in HOTLINE_WORDS:
                    tok.add_word(word, 20000, None)
                _tokenizer = tok
    return _tokenizer


def warm_up() -> None:
    """Load the dictionary now (call at server start or in an executor) so the first request is not slow."""
    _load()


def tokens(text: str | None) -> list[str]:
    """Content words of ``text``: jieba precise mode without HMM, stop words and punctuation dropped."""
    norm = normalize(text)
    if not norm:
        return []
    out: list[str] = []
    for block in _BLOCKS.split(norm):
        if block:
            out += _block_words(block)
    return out


def _block_words(block: str) -> list[str]:
    """Content words of one block of ``jieba.cut``'s own split (a run of Han, letters and digits, or what
    lies between two runs). jieba cuts each block alone, so cutting block by block gives its words for the
    whole text, and a block seen before (a ticket routed again, a draft re-sent as the call goes on, common
    phrases) is not cut again: jieba was the largest part of a routing request's CPU."""
    words = _block_cache.get(block)
    if words is None:
        words = []
        for word in _load().cut(block, False):
            word = word.strip()
            if word and word not in STOP_WORDS and _KEEP.search(word):
                words.append(word)
        if len(_block_cache) >= 30_000:  # ~20 MB (~600 bytes a block), the blocks of ~1,000 tickets
            _block_cache.clear()
        _block_cache[block] = words
    return words


def pretokenized(text: str | None) -> list[str]:
    """Tokens of text that is already space-separated jieba output (``messages_tokenized.csv``)."""
    return [w for w in normalize(text).split(" ") if w and w not in STOP_WORDS]


def ticket_text(title: str | None, content: str | None, address: str | None = None) -> str:
    """One string for a ticket; the title first because callers and agents put the gist there."""
    return " ".join(p for p in (title or "", content or "", address or "") if p)


def char_shingles(text: str | None, k: int = 3) -> set[str]:
    t = compact(text)
    if len(t) < k:
        return {t} if t else set()
    return {t[i:i + k] for i in range(len(t) - k + 1)}


def join_tokens(words: Iterable[str]) -> str:
    return " ".join(words)
