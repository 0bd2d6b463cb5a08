// The assistant, on the chat page and in the panel of every other page: the ChatKit web
// component when its script loads in time, otherwise a built-in client that speaks the
// same protocol through the BFF (/api/chatkit): streaming, Stop, Retry, conversations kept
// per user across reloads, safe Markdown. Each request carries the page's context
// (X-Page-URL, X-Page-Title, X-Project-ID); a change the assistant made to the user's
// tasks (a `client_effect` event) is announced as a `taskflow:effect` DOM event.
"use strict";

(function () {
  const root = document.getElementById("chat");
  if (!root) return;
  const cfg = root.dataset;
  // Stored state is per user: another user signing in in this tab starts clean.
  const prefix = "taskflow.chat." + (cfg.user || "anonymous") + ".";
  const THREAD_KEY = prefix + "thread";
  const DRAFT_KEY = prefix + "draft";
  const OPEN_KEY = prefix + "panel-open";
  // Once the widget's script failed in this tab, later pages go straight to the built-in client.
  const NO_WIDGET_KEY = "taskflow.chat.no-widget";
  const loading = document.getElementById("chat-loading");
  const panel = root.closest("details");

  /** Tells the page that the assistant changed something (tasks.js refreshes the lists). */
  function effect(name, data) {
    document.dispatchEvent(new CustomEvent("taskflow:effect", { detail: { name, data: data || {} } }));
  }

  function contextHeaders() {
    return {
      "X-Page-URL": window.location.href,
      // Header values must be Latin-1 in fetch: the title travels percent-encoded UTF-8.
      "X-Page-Title": encodeURIComponent(document.title.slice(0, 120)),
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

  /** The page's own load, so that a hanging widget script cannot keep the document loading. */
  function loaded() {
    return document.readyState === "complete"
      ? Promise.resolve()
      : new Promise((resolve) => window.addEventListener("load", resolve, { once: true }));
  }

  /** The widget's script, loaded after the page and given a deadline. */
  function loadWidget() {
    return new Promise((resolve, reject) => {
      if (!cfg.scriptUrl) return reject(new Error("no script URL"));
      if (sessionStorage.getItem(NO_WIDGET_KEY) === cfg.scriptUrl) return reject(new Error("ChatKit script unavailable"));
      const failed = (why) => { sessionStorage.setItem(NO_WIDGET_KEY, cfg.scriptUrl); reject(new Error(why)); };
      const timer = setTimeout(() => failed("ChatKit script timed out"), 4000);
      const script = document.createElement("script");
      script.src = cfg.scriptUrl;
      script.async = true;
      script.onerror = () => { clearTimeout(timer); failed("ChatKit script failed to load"); };
      script.onload = () => customElements.whenDefined("openai-chatkit").then(() => { clearTimeout(timer); resolve(); });
      document.head.appendChild(script);
    });
  }

  function startWidget() {
    const el = document.getElementById("chatkit");
    loading.hidden = true;
    el.hidden = false;
    el.setOptions({
      api: { url: cfg.apiUrl, domainKey: cfg.domainKey, fetch: chatFetch, uploadStrategy: { type: "two_phase" } },
    });
    // The widget reports client effects as DOM events; and whatever an answer did, the
    // lists beside it are refreshed when it ends.
    el.addEventListener("chatkit.effect", (e) => effect(e.detail && e.detail.name, e.detail && e.detail.data));
    el.addEventListener("chatkit.response.end", () => effect("tasks.changed"));
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
        const data = raw.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
        if (data) onEvent(JSON.parse(data));
      }
    }
  }

  /** Safe Markdown: text is escaped first; then paragraphs, lists, code, emphasis, links. */
  function markdown(src) {
    const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
    const inline = (s) => esc(s)
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/\*([^*]+)\*/g, "<em>$1</em>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
    const out = [];
    const blocks = src.split(/```/);
    blocks.forEach((block, i) => {
      if (i % 2 === 1) {
        out.push("<pre><code>" + esc(block.replace(/^[a-z]*\n/, "")) + "</code></pre>");
        return;
      }
      for (const para of block.split(/\n{2,}/)) {
        const lines = para.split("\n").filter((l) => l.trim() !== "");
        if (!lines.length) continue;
        if (lines.every((l) => /^\s*[-*] /.test(l))) {
          out.push("<ul>" + lines.map((l) => "<li>" + inline(l.replace(/^\s*[-*] /, "")) + "</li>").join("") + "</ul>");
        } else if (lines.every((l) => /^\s*\d+\. /.test(l))) {
          out.push("<ol>" + lines.map((l) => "<li>" + inline(l.replace(/^\s*\d+\. /, "")) + "</li>").join("") + "</ol>");
        } else {
          out.push("<p>" + lines.map(inline).join("<br>") + "</p>");
        }
      }
    });
    return out.join("");
  }

  function startFallback() {
    const fallback = document.getElementById("fallback");
    const log = document.getElementById("chat-log");
    const form = document.getElementById("chat-form");
    const input = document.getElementById("chat-input");
    const send = document.getElementById("chat-send");
    const stop = document.getElementById("chat-stop");
    const status = document.getElementById("chat-status");
    const tools = document.getElementById("chat-tools");
    const threadList = document.getElementById("thread-list");
    const newChat = document.getElementById("new-chat");
    loading.hidden = true;
    fallback.hidden = false;
    tools.hidden = false;
    let threadId = sessionStorage.getItem(THREAD_KEY);
    let controller = null;
    let lastText = "";
    input.value = sessionStorage.getItem(DRAFT_KEY) || "";

    const nearBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    function scrollDown(force) {
      if (force || nearBottom()) log.scrollTop = log.scrollHeight;
    }

    function bubble(role, text) {
      const div = document.createElement("div");
      div.className = "msg " + role;
      if (role === "assistant") div.innerHTML = markdown(text);
      else div.textContent = text;
      log.appendChild(div);
      scrollDown(true);
      return div;
    }

    function setThread(id) {
      threadId = id;
      if (id) sessionStorage.setItem(THREAD_KEY, id);
      else sessionStorage.removeItem(THREAD_KEY);
    }

    function setBusy(busy) {
      send.disabled = busy;
      stop.hidden = !busy;
    }

    async function api(body) {
      const res = await chatFetch(cfg.apiUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status === 401) throw Object.assign(new Error("signed out"), { signedOut: true });
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }

    function showSignedOut() {
      sessionStorage.setItem(DRAFT_KEY, input.value || lastText);
      status.innerHTML = "";
      const a = document.createElement("a");
      a.href = "/api/auth/login?returnTo=" + encodeURIComponent(location.pathname + location.search);
      a.textContent = "Sign in again";
      status.append("You were signed out. Your message is kept. ", a);
    }

    async function refreshThreads() {
      try {
        const list = await api({ type: "threads.list", params: { limit: 20, order: "desc" } });
        threadList.length = 1;
        for (const t of list.data || []) {
          const opt = document.createElement("option");
          opt.value = t.id;
          opt.textContent = t.title || "Untitled conversation";
          opt.selected = t.id === threadId;
          threadList.appendChild(opt);
        }
      } catch (err) {
        if (err.signedOut) showSignedOut();
      }
    }

    /** Shows the messages of `id` (after a reload, or when a past conversation is picked). */
    async function openThread(id) {
      log.textContent = "";
      if (!id) return;
      try {
        const items = await api({ type: "items.list", params: { thread_id: id, limit: 100, order: "asc" } });
        for (const item of items.data || []) {
          const text = (item.content || []).map((c) => c.text || "").join("");
          if (item.type === "user_message") bubble("user", text);
          else if (item.type === "assistant_message") bubble("assistant", text);
        }
        setThread(id);
      } catch (err) {
        // A conversation the backend no longer has (a restart): start a new one.
        setThread(null);
        if (err.signedOut) showSignedOut();
      }
    }

    async function ask(text) {
      lastText = text;
      bubble("user", text);
      const answer = bubble("assistant", "");
      answer.classList.add("pending");
      let answerText = "";
      let events = 0;
      const content = { content: [{ type: "input_text", text }], attachments: [], inference_options: {} };
      const body = threadId
        ? { type: "threads.add_user_message", params: { thread_id: threadId, input: content } }
        : { type: "threads.create", params: { input: content } };
      status.textContent = "";
      controller = new AbortController();
      setBusy(true);
      try {
        const res = await chatFetch(cfg.apiUrl, {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify(body),
          signal: controller.signal,
        });
        if (res.status === 401) throw Object.assign(new Error("signed out"), { signedOut: true });
        if (!res.ok) {
          const err = await res.json().catch(() => ({}));
          throw new Error(err.message || err.error || "HTTP " + res.status);
        }
        await readEvents(res, (e) => {
          events += 1;
          if (e.type === "thread.created") {
            setThread(e.thread.id);
            refreshThreads();
          } else if (e.type === "thread.item.updated" && e.update && e.update.type === "assistant_message.content_part.text_delta") {
            answerText += e.update.delta;
            answer.classList.remove("pending");
            answer.innerHTML = markdown(answerText);
            scrollDown(false);
          } else if (e.type === "client_effect") {
            effect(e.name, e.data);
          } else if (e.type === "error") {
            throw new Error(e.message || "the assistant reported an error");
          }
        });
        sessionStorage.removeItem(DRAFT_KEY);
      } catch (err) {
        answer.classList.remove("pending");
        if (err.name === "AbortError") {
          answer.innerHTML = markdown(answerText || "(stopped)");
          status.textContent = "Stopped.";
        } else if (err.signedOut) {
          answer.remove();
          showSignedOut();
        } else {
          // Was the session ended while the answer streamed?
          const me = await window.bffFetch("/api/auth/me").catch(() => null);
          if (me && me.status === 401) {
            answer.remove();
            showSignedOut();
          } else {
            if (threadId && events === 0) setThread(null); // the backend did not know the thread
            answer.classList.add("error");
            answer.textContent = (answerText ? answerText + " — " : "") + "The answer was interrupted.";
            const retry = document.createElement("button");
            retry.type = "button";
            retry.className = "button secondary retry";
            retry.textContent = "Retry";
            retry.addEventListener("click", () => { retry.remove(); ask(text); });
            status.textContent = "";
            status.appendChild(retry);
          }
        }
      } finally {
        controller = null;
        setBusy(false);
      }
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (!text || controller) return;
      input.value = "";
      ask(text);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    input.addEventListener("input", () => sessionStorage.setItem(DRAFT_KEY, input.value));
    stop.addEventListener("click", () => { if (controller) controller.abort(); });
    newChat.addEventListener("click", () => {
      if (controller) controller.abort();
      setThread(null);
      log.textContent = "";
      threadList.value = "";
      status.textContent = "";
      input.focus();
    });
    threadList.addEventListener("change", () => { if (threadList.value) openThread(threadList.value); });

    openThread(threadId).then(refreshThreads);
  }

  let started = false;
  function start() {
    if (started) return;
    started = true;
    // Shown only where this script runs: without JavaScript the <noscript> note says why.
    loading.hidden = false;
    loaded().then(loadWidget).then(startWidget).catch(startFallback);
  }

  if (!panel) {
    start();
  } else {
    // The panel starts the assistant when first opened, and stays open across pages.
    // Escape closes the panel and gives focus back to its button.
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && panel.open) {
        panel.open = false;
        panel.querySelector("summary").focus();
      }
    });
    panel.addEventListener("toggle", () => {
      sessionStorage.setItem(OPEN_KEY, panel.open ? "1" : "");
      if (panel.open) start();
    });
    // Reopened on wide screens only, where it sits beside the page instead of over it.
    if (sessionStorage.getItem(OPEN_KEY) && window.matchMedia("(min-width: 1100px)").matches) panel.open = true;
  }
})();
