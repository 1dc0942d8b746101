"""SMS sender: how fast the outbox drains into a real SMPP server on loopback (smppy, the tests' server), on a
real SQLite file, through the real SmsService and smpplib.

Per text the sender does: one enquire_link round trip (is the gateway still there? a text is only claimed
from a gateway that answered), one claim (committed UPDATE), an opt-out read, one submit_sm round trip per
part, and one commit with the message ids (plus one per part before the last). The figures are the cost of
that care, next to a BASELINE in the same run: smpplib alone submitting the same parts back to back to the
same server (no database, no enquire_link).

    /work/main/.venv/bin/python benchmarks/sms_sender.py [--texts 500]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TZ = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=TZ).astimezone(UTC)
SHORT = "【12345热线】您的诉求已受理，工单编号20261124-000001，请留存以便查询办理进度。回复TD退订"
LONG = SHORT * 3  # three parts with a UDH each


async def run(texts: int, text: str) -> dict[str, float]:
    import smpplib.client
    from sqlalchemy.ext.asyncio import async_sessionmaker

    import migrations
    import server
    from config.settings import load_settings
    from tests.tickets.sms.smsc import TestSmsc
    from tickets.sms.gateway import encode
    from tickets.sms.service import SmsService, read_templates
    from tickets.sms.store import OUTBOX, SmsStore

    smsc = TestSmsc()
    port = await smsc.start()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await asyncio.to_thread(migrations.upgrade, url)
        settings = load_settings(env={}).with_overrides(
            database={"url": url}, sms={"host": "127.0.0.1", "port": port, "system_id": "bench", "quiet_hours": ""})
        engine = server.make_engine(settings)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with engine.begin() as conn:
            await conn.execute(OUTBOX.insert(), [
                {"ticket_number": f"20261124-{i:06d}", "kind": "accepted", "phone": f"139{i:08d}", "text": text,
                 "created_at": NOON, "not_before": NOON, "state": "pending", "attempts": 0, "claimed_by": "",
                 "parts_sent": 0, "message_ids": [], "last_error": ""} for i in range(texts)])
        service = SmsService(SmsStore(sessions), settings, lambda: NOON,
                             read_templates(settings.config_file(settings.sms.templates_file)))
        t0 = time.perf_counter()
        sent = await service.step()
        ours = time.perf_counter() - t0
        assert sent == texts and len(smsc.messages()) == texts, (sent, len(smsc.messages()))
        parts = len(smsc.parts)
        await service.close()
        await engine.dispose()

        # BASELINE: the same parts, smpplib alone, back to back (what the wire and the server cost).
        def bare() -> float:
            client = smpplib.client.Client("127.0.0.1", port, timeout=10)
            client.connect()
            client.bind_transceiver(system_id="bench", password="")
            enc = encode(text, 1)
            t = time.perf_counter()
            for i in range(texts):
                for part in enc.parts:
                    pdu = client.send_message(source_addr="12345", destination_addr=f"139{i:08d}", short_message=part,
                                              data_coding=enc.data_coding, esm_class=enc.esm_class)
                    while True:
                        resp = client.read_pdu()
                        if resp.command == "submit_sm_resp" and resp.sequence == pdu.sequence:
                            break
            elapsed = time.perf_counter() - t
            client.unbind()
            client.disconnect()
            return elapsed

        base = await asyncio.to_thread(bare)
    await smsc.stop()
    return {"texts": texts, "parts": parts, "seconds": round(ours, 3), "texts_per_s": round(texts / ours, 1),
            "parts_per_s": round(parts / ours, 1), "baseline_seconds": round(base, 3),
            "baseline_parts_per_s": round(parts / base, 1), "ratio": round(ours / base, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=500)
    args = parser.parse_args()
    for name, text in (("short (1 part)", SHORT), ("long (3 parts)", LONG)):
        result = asyncio.run(run(args.texts, text))
        print(name, result, "load average", os.getloadavg())


if __name__ == "__main__":
    main()
