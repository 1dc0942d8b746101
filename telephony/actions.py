"""AMI actions an agent or supervisor can take, as plain action dicts (the connection sends them).

Pure: builds dicts only. Field names follow the Asterisk 20/22 manager actions.
"""
from __future__ import annotations

from typing import Any

SPY_OPTIONS = {"listen": "qE", "whisper": "qEw", "barge": "qEB"}  # q quiet, E exit when the spied leg hangs up


def queue_add(queue: str, interface: str, member_name: str = "", *, paused: bool = False, reason: str = "",
              state_interface: str = "") -> dict[str, Any]:
    a: dict[str, Any] = {"Action": "QueueAdd", "Queue": queue, "Interface": interface}
    if member_name:
        a["MemberName"] = member_name
    if state_interface:
        a["StateInterface"] = state_interface
    if paused:
        a["Paused"] = "true"
        if reason:
            a["Reason"] = reason
    return a


def queue_remove(queue: str, interface: str) -> dict[str, Any]:
    return {"Action": "QueueRemove", "Queue": queue, "Interface": interface}


def queue_pause(interface: str, paused: bool, reason: str = "", queue: str = "") -> dict[str, Any]:
    # There is no QueueUnpause: QueuePause with Paused false. Without Queue it applies to every queue.
    a: dict[str, Any] = {"Action": "QueuePause", "Interface": interface, "Paused": "true" if paused else "false"}
    if queue:
        a["Queue"] = queue
    if reason:
        a["Reason"] = reason
    return a


def originate(channel: str, *, context: str = "", exten: str = "", priority: int = 1, application: str = "",
              data: str = "", caller_id: str = "", timeout_ms: int = 30000, variables: dict[str, str] | None = None,
              action_id: str = "") -> dict[str, Any]:
    """Async Originate: the answer is only "queued"; the result is the later OriginateResponse (same ActionID)."""
    a: dict[str, Any] = {"Action": "Originate", "Channel": channel, "Async": "true", "Timeout": str(timeout_ms)}
    if application:
        a["Application"] = application
        if data:
            a["Data"] = data
    else:
        a.update({"Context": context, "Exten": exten, "Priority": str(priority)})
    if caller_id:
        a["CallerID"] = caller_id
    if variables:
        a["Variable"] = [f"{k}={v}" for k, v in variables.items()]
    if action_id:
        a["ActionID"] = action_id
    return a


def redirect(channel: str, context: str, exten: str, priority: int = 1) -> dict[str, Any]:
    return {"Action": "Redirect", "Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority)}


def blind_transfer(channel: str, context: str, exten: str) -> dict[str, Any]:
    # Channel is the transferer (the agent's leg); its bridged peer (the caller) goes to Context/Exten.
    return {"Action": "BlindTransfer", "Channel": channel, "Context": context, "Exten": exten}


def chanspy(supervisor_interface: str, target_channel: str, mode: str, caller_id: str = "") -> dict[str, Any]:
    """Ring the supervisor; when answered, ChanSpy on the agent's leg: listen, whisper (agent hears) or barge."""
    if mode not in SPY_OPTIONS:
        raise ValueError(f"unknown spy mode {mode!r}")
    # ChanSpy matches a channel name prefix; strip the ;1/;2 suffix ambiguity by giving the full name.
    return originate(supervisor_interface, application="ChanSpy", data=f"{target_channel},{SPY_OPTIONS[mode]}",
                     caller_id=caller_id or '"班长监听" <12345>')
