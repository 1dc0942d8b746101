"""A real SMPP 3.4 server on loopback for the SMS tests: smppy's server (its PDU codec is smpppdu's), with
what a test needs on top: every submit_sm kept as it came (data coding, UDH, bytes), a message_id per part,
stop/start on the same port (gateway down, then up), and holding back the answer to a submit (a sender killed
while waiting for it).

smppy decodes each TCP read as exactly one PDU; the protocol below first cuts the stream at each PDU's
command_length (the first 4 bytes), which smppy leaves to the caller.
"""
from __future__ import annotations

import asyncio
import io
import socket
import struct
from dataclasses import dataclass
from typing import Any

from smpp.pdu.constants import data_coding_default_name_map
from smpp.pdu.operations import SubmitSMResp
from smpp.pdu.pdu_encoding import PDUEncoder
from smpp.pdu.pdu_types import CommandId, CommandStatus, EsmClassGsmFeatures
from smppy.server import Application, SmppClient, SmppProtocol


@dataclass
class Part:
    destination: str
    source: str
    data_coding: int
    udhi: bool
    short_message: bytes
    message_id: str = ""

    @property
    def udh(self) -> bytes:
        return self.short_message[:self.short_message[0] + 1] if self.udhi else b""

    @property
    def text(self) -> str:
        body = self.short_message[len(self.udh):]
        return body.decode("utf-16-be") if self.data_coding == 8 else body.decode("latin-1")


@dataclass
class Message:
    destination: str
    text: str
    parts: list[Part]


class TestSmsc(Application):
    def __init__(self) -> None:
        super().__init__(name="test-smsc")
        self.parts: list[Part] = []
        self.clients: list[SmppClient] = []
        self.protocols: set[_Protocol] = set()
        self.hold_after: int | None = None  # answer this many submits, then keep quiet
        # Statuses for the next submits, in order (e.g. ESME_RTHROTTLED); a refused part is not kept.
        self.refusals: list[CommandStatus] = []
        self.refused: list[Part] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._ids = 0

    async def start(self, port: int = 0, *, sock: socket.socket | None = None) -> int:
        """Listen on ``port`` (0: the one before, or one the kernel picks), or on ``sock``: a test taking the
        gateway down keeps its port with ``tests.services.hold_port`` (hence reuse_port) and hands it back."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._server = await loop.create_server(lambda: _Protocol(self), sock=sock)
        else:
            self._server = await loop.create_server(lambda: _Protocol(self), "127.0.0.1", port or self.port,
                                                    reuse_port=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """The gateway goes away: no more connections, the open ones cut."""
        if self._server is not None:
            self._server.close()
            for proto in list(self.protocols):
                if proto._transport is not None:
                    proto._transport.abort()
            await self._server.wait_closed()
            self._server = None
        self.clients.clear()

    def next_id(self) -> str:
        self._ids += 1
        return f"smsc-{self._ids:05d}"

    def messages(self) -> list[Message]:
        """Whole messages as a phone shows them: concatenated parts joined by their UDH reference."""
        out: list[Message] = []
        open_: dict[tuple[str, int, int], Message] = {}
        for p in self.parts:
            if p.udhi and p.udh[:3] == b"\x05\x00\x03":
                key = (p.destination, p.udh[3], p.udh[4])
                msg = open_.get(key)
                if msg is None:
                    msg = open_[key] = Message(p.destination, "", [])
                    out.append(msg)
                msg.parts.append(p)
                msg.text = "".join(x.text for x in sorted(msg.parts, key=lambda x: x.udh[5]))
                if len(msg.parts) == p.udh[4]:
                    del open_[key]
            else:
                out.append(Message(p.destination, p.text, [p]))
        return out

    async def handle_bound_client(self, client: SmppClient) -> SmppClient | None:
        self.clients.append(client)
        return client

    async def handle_unbound_client(self, client: SmppClient) -> None:
        if client in self.clients:
            self.clients.remove(client)

    async def handle_sms_received(self, client: SmppClient, source_number: str, dest_number: str, text: str) -> None:
        pass  # every part is kept by the protocol, with its bytes

    async def reply_from(self, phone: str, text: str) -> None:
        """A citizen's text to the hotline (deliver_sm to the bound sender)."""
        await self.clients[-1].send_sms(source=phone, dest="12345", text=text)


class _Protocol(SmppProtocol):
    def __init__(self, app: TestSmsc) -> None:
        super().__init__(app)
        self.smsc = app
        self.buffer = b""
        self.last: Part | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.smsc.protocols.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.smsc.protocols.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 4:
            length = struct.unpack(">L", self.buffer[:4])[0]
            if len(self.buffer) < length:
                break
            pdu, self.buffer = self.buffer[:length], self.buffer[length:]
            asyncio.ensure_future(self.handle_data_received(pdu))

    async def handle_data_received(self, data: bytes) -> None:
        pdu = PDUEncoder().decode(io.BytesIO(data))
        if pdu.command_id == CommandId.submit_sm:
            p = pdu.params
            part = Part(destination=p["destination_addr"].decode() if isinstance(p["destination_addr"], bytes)
                        else p["destination_addr"],
                        source=p["source_addr"].decode() if isinstance(p["source_addr"], bytes) else p["source_addr"],
                        data_coding=data_coding_default_name_map[str(p["data_coding"].scheme_data)],
                        udhi=EsmClassGsmFeatures.UDHI_INDICATOR_SET in p["esm_class"].gsm_features,
                        short_message=p["short_message"])
            self.smsc.parts.append(part)
            if self.smsc.hold_after is not None and len(self.smsc.parts) > self.smsc.hold_after:
                return  # taken, never answered
            self.last = part
        await super().handle_data_received(data)

    def _send_response(self, response: Any) -> None:
        status = self.smsc.refusals.pop(0) if response.command_id == CommandId.submit_sm_resp and \
            self.last is not None and self.smsc.refusals else CommandStatus.ESME_ROK
        if status != CommandStatus.ESME_ROK:
            self.smsc.parts.remove(self.last)
            self.smsc.refused.append(self.last)
            self.last = None
            response = SubmitSMResp(sequence_number=response.sequence_number, status=status)
        if response.command_id == CommandId.submit_sm_resp and self.last is not None:
            self.last.message_id = self.smsc.next_id()
            response.params["message_id"] = self.last.message_id
            self.last = None
        super()._send_response(response)
