// The chat page: the ChatKit web component when its script loads, otherwise a small
// built-in client that speaks the same protocol through the BFF (/api/chatkit).
"use strict";

(function () {
  const root = document.getElementById("chat");
  if (!root) return;
  const cfg = root.dataset;
  const THREAD_KEY = "taskflow.chat.thread";

  function contextHeaders() {
    return {
      "X-Page-URL": window.location.href,
      "X-Page-Title": document.title.slice(0, 200),
      "X-Project-ID": cfg.projectId || "",
    };
  }

  /** The fetch handed to ChatKit: cookies, context headers and the anti-forgery header. */
  function chatFetch(input, init) {
    const options = Object.assign({}, init || {});
    const headers = new Headers(options.headers || {});
    for (const [k, v] of Object.entries(contextHeaders())) headers.set(k, v);
    options.headers = headers;
    return window.bffFetch(input, options);
  }

  function loadWidget() {
    return new Promise((resolve, reject) => {
      if (!cfg.scriptUrl) return reject(new Error("no script URL"));
      const timer = setTimeout(() => reject(new Error("ChatKit script timed out")), 4000);
      const script = document.createElement("script");
      script.src = cfg.scriptUrl;
      script.async = true;
      script.onerror = () => { clearTimeout(timer); reject(new Error("ChatKit script failed to load")); };
      script.onload = () => customElements.whenDefined("openai-chatkit").then(() => { clearTimeout(timer); resolve(); });
      document.head.appendChild(script);
    });
  }

  function startWidget() {
    const el = document.getElementById("chatkit");
    el.hidden = false;
    el.setOptions({
      api: {
        url: cfg.apiUrl,
        domainKey: cfg.domainKey,
        fetch: chatFetch,
        uploadStrategy: { type: "two_phase" },
      },
    });
  }

  /** Reads `data: <json>` events from a streamed response as they arrive. */
  async function readEvents(res, onEvent) {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = raw
          .split("\n")
          .filter((l) => l.startsWith("data:"))
          .map((l) => l.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) onEvent(JSON.parse(data));
      }
    }
  }

  function startFallback() {
    const fallback = document.getElementById("fallback");
    const log = document.getElementById("chat-log");
    const form = document.getElementById("chat-form");
    const input = document.getElementById("chat-input");
    const status = document.getElementById("chat-status");
    fallback.hidden = false;
    let threadId = sessionStorage.getItem(THREAD_KEY);

    function bubble(role, text) {
      const div = document.createElement("div");
      div.className = "msg " + role;
      div.textContent = text;
      log.appendChild(div);
      return div;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      bubble("user", text);
      const answer = bubble("assistant", "");
      const content = { content: [{ type: "input_text", text }], attachments: [], inference_options: {} };
      const body = threadId
        ? { type: "threads.add_user_message", params: { thread_id: threadId, input: content } }
        : { type: "threads.create", params: { input: content } };
      status.textContent = "…";
      try {
        const res = await chatFetch(cfg.apiUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
        });
        if (res.status === 401) {
          window.location.assign("/api/auth/login?returnTo=" + encodeURIComponent("/chat"));
          return;
        }
        if (!res.ok) {
          const err = await res.json().catch(() => ({}));
          throw new Error(err.message || err.error || "HTTP " + res.status);
        }
        await readEvents(res, (e) => {
          if (e.type === "thread.created") {
            threadId = e.thread.id;
            sessionStorage.setItem(THREAD_KEY, threadId);
          } else if (e.type === "thread.item.updated" && e.update && e.update.type === "assistant_message.content_part.text_delta") {
            answer.textContent += e.update.delta;
          } else if (e.type === "error") {
            throw new Error(e.message || "the assistant reported an error");
          }
        });
        status.textContent = "";
      } catch (err) {
        answer.classList.add("error");
        answer.textContent = (answer.textContent ? answer.textContent + " — " : "") + "Error: " + err.message;
        status.textContent = "The answer was interrupted. Send again to retry.";
        if (threadId && !answer.textContent.includes(" ")) {
          threadId = null;
          sessionStorage.removeItem(THREAD_KEY);
        }
      }
    });
  }

  loadWidget().then(startWidget).catch(startFallback);
})();
