"""The SMS gateway over SMPP 3.4, through smpplib (a blocking client: every call here runs in a worker thread,
one at a time, from the sender task in ``service.py``).

What this layer tells its caller, because the outbox's promise (never twice) depends on it:
- ``GatewayDown``: nothing of the message was handed over (connect, bind or the enquire_link before it failed);
- ``GatewayRefused``: the gateway answered a part with an error status, so that part was not taken;
- ``LostInFlight``: a part was written and the connection broke (or went silent) before its answer, so the
  gateway may or may not have it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

log = logging.getLogger("hotline.sms")

# Refusals worth another try later; any other status (bad number, bad source...) is final.
TEMPORARY = frozenset({c.SMPP_ESME_RSYSERR, c.SMPP_ESME_RMSGQFUL, c.SMPP_ESME_RSUBMITFAIL, c.SMPP_ESME_RTHROTTLED,
                       c.SMPP_ESME_RX_T_APPN})


class GatewayError(Exception):
    pass


class GatewayDown(GatewayError):
    pass


class GatewayRefused(GatewayError):
    def __init__(self, status: int) -> None:
        self.status = status
        self.temporary = status in TEMPORARY
        super().__init__(f"SMPP status 0x{status:08X}: {c.DESCRIPTIONS.get(status, 'unknown')}")


class LostInFlight(GatewayError):
    pass


@dataclass(frozen=True)
class Encoded:
    parts: list[bytes]
    data_coding: int
    esm_class: int


def encode(text: str, reference: int) -> Encoded:
    """UCS-2 (data_coding 8), as Chinese needs; longer than one SMS: parts with a concatenation UDH (smpplib's).

    smpplib draws the UDH reference number at random; it is replaced by one derived from the outbox row so the
    parts of a message that is resumed after a refusal still join the parts sent before it.
    """
    parts, coding, esm = smpplib.gsm.make_parts(text, encoding=c.SMPP_ENCODING_ISO10646)
    if esm & c.SMPP_GSMFEAT_UDHI:
        ref = bytes([reference & 0xFF])
        parts = [p[:3] + ref + p[4:] for p in parts]  # UDH: 05 00 03 <ref> <total> <seq>
    return Encoded(list(parts), coding, esm)


class SmppGateway:
    def __init__(self, host: str, port: int, system_id: str, password: str, *, system_type: str = "",
                 source_addr: str = "12345", timeout: float = 10.0) -> None:
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.source_addr = source_addr
        self.timeout = timeout
        self._client: Any = None
        self._lock = threading.Lock()
        # Texts citizens sent us (deliver_sm), drained by the service: (from number, text).
        self.received: list[tuple[str, str]] = []

    @property
    def connected(self) -> bool:
        return self._client is not None

    def _connect(self) -> None:
        client = smpplib.client.Client(self.host, self.port, timeout=self.timeout, allow_unknown_opt_params=True)
        try:
            client.connect()
            client.bind_transceiver(system_id=self.system_id, password=self.password, system_type=self.system_type)
        except (smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
            _close(client)
            raise GatewayDown(f"{self.host}:{self.port}: {exc or type(exc).__name__}") from None
        self._client = client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            if client is not None:
                try:
                    if client.state != c.SMPP_CLIENT_STATE_CLOSED:
                        client.unbind()
                except Exception:  # already broken: closing is all that is left
                    pass
                _close(client)

    def check(self) -> None:
        """Bound and answering (enquire_link), reconnecting once if the old connection died; else GatewayDown.
        Also picks up what citizens sent meanwhile."""
        with self._lock:
            for _ in range(2):
                if self._client is None:
                    self._connect()
                try:
                    pdu = smpplib.smpp.make_pdu("enquire_link", client=self._client)
                    self._client.send_pdu(pdu)
                    self._answer_to(pdu)
                    return
                except (TimeoutError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError):
                    _close(self._client)
                    self._client = None
            raise GatewayDown(f"{self.host}:{self.port}: no answer to enquire_link")

    def submit(self, phone: str, encoded: Encoded, index: int) -> str:
        """Hand over part ``index``; returns the gateway's message_id."""
        with self._lock:
            if self._client is None:
                raise GatewayDown("not connected")
            try:
                pdu = self._client.send_message(
                    source_addr_ton=c.SMPP_TON_UNK, source_addr_npi=c.SMPP_NPI_ISDN, source_addr=self.source_addr,
                    dest_addr_ton=c.SMPP_TON_NATNL, dest_addr_npi=c.SMPP_NPI_ISDN, destination_addr=phone,
                    short_message=encoded.parts[index], data_coding=encoded.data_coding, esm_class=encoded.esm_class,
                    registered_delivery=0)
                resp = self._answer_to(pdu)
            except (TimeoutError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError, OSError) as exc:
                _close(self._client)
                self._client = None
                raise LostInFlight(f"{type(exc).__name__}: {exc}") from None
            if resp.is_error():
                raise GatewayRefused(int(resp.status))
            mid = resp.message_id
            return mid.decode("ascii", "replace") if isinstance(mid, bytes) else str(mid or "")

    def _answer_to(self, request: Any) -> Any:
        """Read until the answer to ``request`` (same sequence number), serving what the gateway sends meanwhile."""
        client = self._client
        want = request.command + "_resp"
        while True:
            pdu = client.read_pdu()
            if pdu.command in (want, "generic_nack") and pdu.sequence == request.sequence:
                if pdu.command == "generic_nack" and not pdu.is_error():
                    raise smpplib.exceptions.PDUError("generic_nack")
                return pdu
            if pdu.command == "deliver_sm":
                self._delivered(pdu)
            elif pdu.command == "enquire_link":
                resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
                resp.sequence = pdu.sequence
                client.send_pdu(resp)
            elif pdu.command == "unbind":
                raise smpplib.exceptions.ConnectionError("the gateway unbound")

    def _delivered(self, pdu: Any) -> None:
        raw = pdu.short_message or b""
        if pdu.esm_class & c.SMPP_GSMFEAT_UDHI and raw:
            raw = raw[raw[0] + 1:]
        coding = int(pdu.data_coding or 0)
        text = raw.decode("utf-16-be", "replace") if coding == c.SMPP_ENCODING_ISO10646 else \
            raw.decode("latin-1" if coding == c.SMPP_ENCODING_ISO88591 else "ascii", "replace")
        # Delivery receipts come as deliver_sm too (esm_class bit 2); only a citizen's own text counts.
        if not pdu.esm_class & 0x04:
            source = pdu.source_addr.decode() if isinstance(pdu.source_addr, bytes) else str(pdu.source_addr)
            self.received.append((source, text))
        resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self._client, status=c.SMPP_ESME_ROK)
        resp.sequence = pdu.sequence
        self._client.send_pdu(resp)


def _close(client: Any) -> None:
    try:
        client.disconnect()
    except Exception:
        pass
