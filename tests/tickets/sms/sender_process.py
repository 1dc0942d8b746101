"""One SMS sender process for the restart test: its own engine, the real SmsService and smpplib gateway.

Run: python -m tests.tickets.sms.sender_process DATABASE_URL SMSC_PORT START_ISO
The clock starts at START_ISO and runs on with the machine's monotonic clock (the test gives a restarted
sender a later start, as time really passes between a crash and a restart).
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker

import server
from config.settings import load_settings
from tickets.sms.service import SmsService, read_templates
from tickets.sms.store import SmsStore


async def main(database_url: str, port: int, start: datetime) -> None:
    settings = load_settings(env={}).with_overrides(
        database={"url": database_url},
        sms={"host": "127.0.0.1", "port": port, "system_id": "hotline", "quiet_hours": "", "lease_seconds": 60,
             "timeout_seconds": 60})
    t0 = time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - t0)

    engine = server.make_engine(settings)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    service = SmsService(SmsStore(sessions), settings, clock,
                         read_templates(settings.config_file(settings.sms.templates_file)),
                         owner=f"sender-{os.getpid()}", tick=0.2)
    print("started", flush=True)
    await service.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), datetime.fromisoformat(sys.argv[3])))
