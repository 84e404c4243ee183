// CareForAll support chat widget: the one script a host page adds.
//
//   <script src="https://chat.example/widget.js" data-locale="bn" async></script>
//   CareForAllChat.identify(donorJwt);   // on every page load, and again when the token is refreshed
//
// It draws a launcher button with an unread badge and opens the chat in an iframe served by the chat
// service (/chat/embed). The two sides talk by postMessage only, each checking the other's origin and
// window: the host sends the donor's token; the iframe sends back an unread count and "close". The host
// never reads the iframe, the iframe never reads the host. Styles live in a shadow root, applied as a
// constructed stylesheet, so the host's CSS cannot reach in and a strict host CSP needs no 'unsafe-inline'.
"use strict";

(() => {
  const existing = window.CareForAllChat;
  if (existing && existing.loaded) return; // the tag was added twice
  const script = document.currentScript;
  if (!script) return;
  const SERVICE = new URL(script.src, location.href).origin;
  const LOCALE = script.dataset.locale || "";
  const FROM_FRAME = "careforall-chat";
  // The open conversation's id (never the token), in this page's session: a reload or the next page of the
  // site reopens it. Kept here, first-party: browsers blocking third-party cookies block the iframe's storage.
  const CONVERSATION_KEY = "careforall-chat:conversation";
  const TO_FRAME = "careforall-chat-host";
  const LABELS = {
    open: script.dataset.label || "Chat with support",
    close: "Close the chat",
    dialog: "Support chat",
  };

  const CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; width: 56px; height: 56px;
      border: 0; border-radius: 50%; background: #0f4c81; color: #fff; cursor: pointer;
      display: flex; align-items: center; justify-content: center; box-shadow: 0 4px 14px rgba(0,0,0,.25);
    }
    .launcher:focus-visible { outline: 3px solid #0b57d0; outline-offset: 3px; }
    .launcher svg { width: 28px; height: 28px; fill: none; stroke: currentColor; stroke-width: 2;
      stroke-linecap: round; stroke-linejoin: round; }
    .badge {
      position: absolute; top: -4px; right: -4px; min-width: 22px; height: 22px; padding: 0 6px;
      border-radius: 11px; background: #b3261e; color: #fff; font: 600 12px/22px system-ui, sans-serif;
      text-align: center; border: 2px solid #fff;
    }
    .badge[hidden], .panel[hidden] { display: none; }
    .panel {
      position: fixed; right: 20px; bottom: 88px; z-index: 2147483000; width: 380px;
      height: min(640px, calc(100vh - 108px)); border-radius: 12px; overflow: hidden;
      box-shadow: 0 8px 30px rgba(0,0,0,.3); background: #f4f6f8;
    }
    iframe { display: block; width: 100%; height: 100%; border: 0; }
    .sentinel { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
    @media (max-width: 480px) {
      .panel { inset: 0; width: 100%; height: 100%; border-radius: 0; }
      .panel:not([hidden]) ~ .launcher { display: none; }
    }
  `;

  const host = document.createElement("div");
  host.id = "careforall-chat";
  const root = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in root) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    const style = document.createElement("style");
    style.textContent = CSS;
    root.append(style);
  }

  const panel = document.createElement("div");
  panel.className = "panel";
  panel.id = "careforall-chat-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "true");
  panel.setAttribute("aria-label", LABELS.dialog);
  // Focus trap: Tab out of either end of the iframe lands on a sentinel, which sends focus back in.
  const before = sentinel();
  const after = sentinel();
  const frame = document.createElement("iframe");
  frame.title = LABELS.dialog;
  frame.referrerPolicy = "no-referrer";
  const query = LOCALE ? `?${new URLSearchParams({ locale: LOCALE })}` : "";
  frame.src = `${SERVICE}/chat/embed${query}`;
  panel.append(before, frame, after);

  const launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.setAttribute("aria-controls", panel.id);
  launcher.setAttribute("aria-expanded", "false");
  launcher.append(icon("M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"));
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.hidden = true;
  badge.setAttribute("aria-hidden", "true");
  launcher.append(badge);
  root.append(panel, launcher);

  // The unread count, with its words and badge text in the chat's language, as the iframe sends them.
  // The unread count, with its words and badge text in the chat's language, as the iframe sends them.
  const state = { ready: false, token: null, open: false, unread: 0, unreadLabel: "", badge: "" };

  // Built as DOM, not markup: a host enforcing Trusted Types refuses innerHTML.
  function icon(d) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
    return svg;
  }

  function identity() {
    let conversationId = null;
    try {
      conversationId = sessionStorage.getItem(CONVERSATION_KEY);
    } catch {
      // storage disabled: every page load starts from the donor's latest open conversation
    }
    return { type: "identify", token: state.token, conversationId };
  }

  function remember(conversationId) {
    try {
      sessionStorage.setItem(CONVERSATION_KEY, conversationId);
    } catch {
      // as above
    }
  }

  function sentinel() {
    const el = document.createElement("span");
    el.className = "sentinel";
    el.tabIndex = 0;
    return el;
  }

  function toFrame(message) {
    if (state.ready) frame.contentWindow.postMessage({ source: TO_FRAME, ...message }, SERVICE);
  }

  // The words come from the iframe, in the chat's language (English until it is ready).
  function label() {
    launcher.setAttribute("aria-label", state.open ? LABELS.close : state.unread ? state.unreadLabel : LABELS.open);
    badge.textContent = state.badge;
    // Open, the launcher closes the chat and is named so; a count beside that name would contradict it.
    badge.hidden = state.unread === 0 || state.open;
  }

  function open() {
    if (state.open) return;
    state.open = true;
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    label();
    frame.focus();
    toFrame({ type: "open" });
  }

  function close() {
    if (!state.open) return;
    state.open = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    label();
    launcher.focus();
  }

  launcher.addEventListener("click", () => (state.open ? close() : open()));
  before.addEventListener("focus", () => {
    frame.focus();
    toFrame({ type: "focus", where: "last" });
  });
  after.addEventListener("focus", () => {
    frame.focus();
    toFrame({ type: "focus", where: "first" });
  });
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.open) close();
  });

  window.addEventListener("message", (event) => {
    // Only our iframe, from the chat service's origin.
    if (event.origin !== SERVICE || event.source !== frame.contentWindow) return;
    const data = event.data;
    if (!data || typeof data !== "object" || data.source !== FROM_FRAME) return;
    if (data.type === "ready") {
      state.ready = true;
      const words = data.labels && typeof data.labels === "object" ? data.labels : {};
      for (const key of Object.keys(LABELS)) if (typeof words[key] === "string" && words[key]) LABELS[key] = words[key];
      frame.title = LABELS.dialog;
      panel.setAttribute("aria-label", LABELS.dialog);
      if (typeof data.lang === "string") panel.lang = data.lang;
      label();
      if (state.token) toFrame(identity());
      if (state.open) toFrame({ type: "open" });
    } else if (
      data.type === "unread" &&
      Number.isInteger(data.count) &&
      data.count >= 0 &&
      typeof data.label === "string" &&
      typeof data.badge === "string"
    ) {
      Object.assign(state, { unread: data.count, unreadLabel: data.label, badge: data.badge });
      label();
    } else if (data.type === "close") {
      close();
    } else if (data.type === "conversation" && typeof data.conversationId === "string") {
      remember(data.conversationId);
    }
  });

  const api = {
    loaded: true,
    // The donor's JWT from the Auth Service; call again with a refreshed one.
    identify(token) {
      if (typeof token !== "string" || !token) return;
      state.token = token;
      toFrame(identity());
    },
    open,
    close,
  };
  window.CareForAllChat = api;
  label();
  const mount = () => document.body.append(host);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
  // Calls made before this script loaded (the queue snippet in the README), in order.
  const queued = existing && Array.isArray(existing.q) ? existing.q : [];
  for (const [method, ...args] of queued) if (typeof api[method] === "function") api[method](...args);
})();
