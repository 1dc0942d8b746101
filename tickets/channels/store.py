"""Tables of the channels feature: the channel partners allowed to post Open311 requests (their API keys kept
only as sha256), and which tickets came in through Open311, with what the partner sent beside the text."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tickets.models import Base


class ChannelPartner(Base):
    """A platform that forwards citizens' requests (a city app, WeChat mini-program, another department's
    system): one API key each, so a leaked key is revoked without touching the others."""

    __tablename__ = "channel_partners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    channel: Mapped[str] = mapped_column(String(20))  # the tickets' channel (app, wechat, web, ...)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex; the key itself is shown once
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[int | None] = mapped_column(Integer)


class Open311Request(Base):
    """A ticket that arrived through ``POST /open311/v2/requests``: only these are readable through Open311."""

    __tablename__ = "open311_requests"
    # By number: the row is written by a TicketStore row hook, inside the ticket's own creating transaction,
    # and the hook sees the ticket's view (its number), not its row id.
    ticket_number: Mapped[str] = mapped_column(String(20), ForeignKey("tickets.number", ondelete="CASCADE"),
                                               primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("channel_partners.id"), index=True)
    service_code: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float | None] = mapped_column(Float)
    long: Mapped[float | None] = mapped_column(Float)
    address_id: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    device_id: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[str] = mapped_column(String(100), default="")
    media_url: Mapped[str] = mapped_column(Text, default="")
