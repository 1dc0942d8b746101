// The call recording on a ticket page: the audio with the transcript beside it; a line of the transcript
// seeks to where it was said, and the line being heard is marked. The server says first whether the file
// can be played (missing, empty, corrupt, outside the recordings directory): then the panel shows why,
// never a dead player. Listening is logged on the server (play_recording).
"use strict";
(() => {
  const panel = document.getElementById("recording");
  if (!panel) return;
  const callId = panel.dataset.callId;
  const audio = document.getElementById("rec-audio");
  const list = document.getElementById("rec-lines");
  const state = document.getElementById("rec-state");
  const SPEAKERS = { caller: "来电人", agent: "话务员", mixed: "" };
  const p2 = n => String(n).padStart(2, "0");
  const clock = s => `${p2(Math.floor(s / 60))}:${p2(Math.floor(s % 60))}`;

  function problem(message) {
    audio.removeAttribute("src");
    audio.hidden = true;
    state.textContent = message;
    state.className = "err rec-problem";
    panel.dataset.state = "error";
  }

  function lines(segments) {
    list.innerHTML = "";
    if (!segments.length) {
      list.innerHTML = '<li class="muted small">没有转写文本（转写未完成或录音中没有识别出语音）。</li>';
      return;
    }
    for (const s of segments) {
      const li = document.createElement("li");
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "rec-line";
      btn.dataset.start = s.start;
      btn.dataset.end = s.end;
      btn.title = "从 " + clock(s.start) + " 开始播放";
      const who = SPEAKERS[s.speaker] !== undefined ? SPEAKERS[s.speaker] : (s.speaker || "");
      btn.innerHTML = `<span class="rec-time">${clock(s.start)}</span>` +
        (who ? `<span class="tag">${Hotline.esc(who)}</span> ` : "") + Hotline.esc(s.text);
      btn.addEventListener("click", () => seek(s.start));
      li.appendChild(btn);
      list.appendChild(li);
    }
  }

  function seek(seconds) {
    audio.currentTime = Number(seconds);
    const played = audio.play();
    if (played && played.catch) played.catch(() => {});  // paused by the user or no audio device: the seek stands
  }
  // Fields recognition filled in (自动识别字段) name the second they were heard at.
  document.querySelectorAll("[data-seek]").forEach(b => b.addEventListener("click", () => seek(b.dataset.seek)));

  audio.addEventListener("timeupdate", () => {
    const t = audio.currentTime;
    list.querySelectorAll(".rec-line").forEach(b => {
      b.classList.toggle("on", t >= Number(b.dataset.start) && t < Number(b.dataset.end) + 0.3);
    });
  });
  audio.addEventListener("loadedmetadata", () => {
    state.textContent = "时长 " + clock(audio.duration) + " · 点击转写中的一句从该处播放";
    state.className = "muted small";
    panel.dataset.state = "ready";
  });
  // The header passed the server's check but the browser still cannot decode it (a codec it lacks, a file
  // cut short after the header).
  audio.addEventListener("error", () => problem("录音无法播放：浏览器不能解码该文件（可能已损坏或编码不受支持）。"));

  (async () => {
    let info;
    try {
      info = await Hotline.api("GET", `/api/v1/asr/calls/${encodeURIComponent(callId)}/playback`);
    } catch (e) {
      problem(e.message);
      return;
    }
    lines(info.transcript ? info.transcript.segments : []);
    if (!info.recording.playable) { problem(info.recording.message); return; }
    audio.src = info.recording.url;
  })();
})();
