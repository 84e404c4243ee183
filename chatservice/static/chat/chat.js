// Donor chat page: vanilla JS against the public API (README: "API" and "Real-time (WebSocket)").
//
// Invariants:
// * User-supplied text reaches the DOM only through textContent: never innerHTML (the page's CSP also
//   forbids inline script, so a slip could not run either).
// * A message is shown once: confirmed messages are keyed by messageId, unsent ones by clientMessageId,
//   and an acknowledgement (message_sent, or our own message replayed) replaces the unsent bubble.
// * `resumeFrom` is the newest message received through an unbroken stream (a history page or the socket,
//   which delivers in order without holes). Reconnects resume from it. A message stored by the REST
//   fallback does not move it, so messages that others sent before it are still replayed.
// * Messages change after they are shown (edits, deletions, reactions: README, "Edits, deletions, reactions,
//   replies"). A change is applied only to a bubble already shown (its bubble is built again from the new
//   state); the highest change cursor seen goes with every reconnect (changedSince), so changes made while
//   the socket was down arrive before live traffic.
// * The token lives in memory only: never in the URL (the fragment is removed on load), never in storage.
// * In the widget (/chat/embed, body data-mode="embed") the token comes from the host page by postMessage,
//   accepted only from the parent window on an allowed origin. The host page keeps the open conversation's
//   id (never the token) in its own sessionStorage and hands it back with the token, so a reload or another
//   page of the host site reopens it. (Storage in this third-party frame is blocked by browsers that block
//   third-party cookies, hence the host's.)
"use strict";

(() => {
  const PAGE_SIZE = 30;
  const MAX_LENGTH = 10000;
  const TYPING_REFRESH_MS = 3000; // at most one typing:true per 3 s; the server expires it after 10 s
  const TYPING_IDLE_MS = 2000; // typing:false after this long without a keystroke
  const REMOTE_TYPING_TIMEOUT_MS = 12000; // in case a typing_stop is lost with a socket
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_MAX_MS = 15000;
  // Translations (Django's JavaScript catalog, /jsi18n/<language>.js, loaded first); English without it.
  const t = (text) => (window.gettext ? window.gettext(text) : text);
  const fill = (text, values) =>
    window.interpolate ? window.interpolate(text, values, true) : text.replace(/%\((\w+)\)s/g, (_, k) => values[k]);
  const format = (text, values) => fill(t(text), values);
  const plural = (one, many, n, values) =>
    fill(window.ngettext ? window.ngettext(one, many, n) : n === 1 ? one : many, values);
  // The page's language, for dates and numbers (the server rendered the page in it).
  const LOCALE = document.documentElement.lang || undefined;
  // The name the API gives staff without one (conversations.rendering.STAFF_FALLBACK_NAME): shown translated.
  const STAFF_FALLBACK_NAME = "Support";
  const FATAL_CLOSE = {
    4401: t("Your access token was refused or has expired."),
    4403: t("You do not take part in this conversation."),
    4404: t("This conversation does not exist."),
  };
  // The server closed the socket for a reason a later attempt can get past (README, close codes): 4008,
  // the page fell behind (resuming from the last message loses nothing); 4429, the user has too many
  // chat sockets open elsewhere (once one closes, this one gets in).
  const TOO_MANY_SOCKETS = 4429;

  const $ = (id) => document.getElementById(id);
  const ui = {
    connection: $("connection"),
    alert: $("alert"),
    openForm: $("open-form"),
    openToken: $("open-token"),
    openConversation: $("open-conversation"),
    openSubject: $("open-subject"),
    chat: $("chat"),
    title: $("chat-title"),
    loadOlder: $("load-older"),
    list: $("messages"),
    typing: $("typing"),
    composer: $("composer"),
    input: $("message"),
    csat: $("csat"),
    csatComment: $("csat-comment"),
    csatThanks: $("csat-thanks"),
    notify: $("notify"),
    notifyEmail: $("notify-email"),
    ended: $("ended"),
    endedText: $("ended-text"),
    startNew: $("start-new"),
    attach: $("attach"),
    file: $("file"),
    signedOut: $("signed-out"),
    developer: $("developer"),
    waiting: $("waiting"),
    closeWidget: $("close-widget"),
    replying: $("replying"),
    replyingLabel: $("replying-label"),
    replyingPreview: $("replying-preview"),
    replyCancel: $("reply-cancel"),
    confirmDelete: $("confirm-delete"),
  };
  const EMBED = document.body.dataset.mode === "embed";
  // The host origins whose messages the widget accepts (CHAT_WIDGET_ALLOWED_ORIGINS).
  const WIDGET_ORIGINS = EMBED ? JSON.parse($("widget-origins").textContent) : [];
  const CONVERSATION_ID = /^[A-Za-z0-9_-]{1,64}$/;
  // What the server accepts (README, "Attachments"), as the page was served with it.
  const ATTACHMENT_MAX_BYTES = Number(document.body.dataset.attachmentMaxBytes || 0);
  // How long a sender may edit (CHAT_EDIT_WINDOW_S) and the reactions anyone may add (CHAT_REACTIONS).
  const EDIT_WINDOW_MS = Number(document.body.dataset.editWindowS || 0) * 1000;
  const REACTIONS = JSON.parse($("chat-reactions").textContent);
  const REPLY_PREVIEW_LENGTH = 140; // as the server cuts a quoted message (realtime.events.REPLY_PREVIEW_LENGTH)
  const STAFF_ROLES = new Set(["ADMIN", "SUPER_ADMIN"]);

  const state = {
    token: null,
    me: null,
    conversationId: null,
    messages: new Map(), // messageId -> {data, el, anchored}
    order: [], // confirmed messageIds, oldest first (the DOM order of confirmed bubbles)
    pending: new Map(), // clientMessageId -> {content, el}
    lateReceipts: new Set(), // receipts for messages not received yet
    olderCursor: null,
    loadingOlder: false,
    resumeFrom: null,
    ws: null,
    attempt: 0,
    reconnectTimer: null,
    crowded: false, // closed with 4429 (too many sockets): the alert says so until a socket opens
    stopped: false,
    readSentIndex: -1,
    readTimer: null,
    visibleOthers: new Set(),
    typingOn: false,
    typingSentAt: 0,
    typingIdleTimer: null,
    remoteTypers: new Map(), // userId -> timer
    rated: false, // this closing was rated (or the server says it already was)
    changeCursor: null, // the highest change number seen (a history page's changeCursor, or a change frame's)
    replyTo: null, // the message the composer answers: {messageId, senderName, senderRole, preview}
    active: null, // the bubble whose actions are in the Tab order (the one focus is in)
    picker: null, // the open reaction picker's bubble
  };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.code = body && body.code;
    }
  }

  // ---- small helpers -------------------------------------------------------------------------------

  function showAlert(text) {
    ui.alert.textContent = text;
    ui.alert.hidden = !text;
  }

  function setConnection(name, text) {
    ui.connection.dataset.state = name;
    ui.connection.textContent = text;
    ui.connection.hidden = name === "idle";
  }

  // A time as the donor reads it: the time of day for today, with the date otherwise (and the year
  // when it is not this year), in the browser's locale.
  function formatWhen(iso) {
    const when = new Date(iso);
    const now = new Date();
    const time = { hour: "2-digit", minute: "2-digit" };
    if (when.toDateString() === now.toDateString()) return when.toLocaleTimeString(LOCALE, time);
    const date = { month: "short", day: "numeric", ...time };
    if (when.getFullYear() !== now.getFullYear()) date.year = "numeric";
    return when.toLocaleString(LOCALE, date);
  }

  function randomId() {
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function userFromToken(token) {
    // Display only (which bubbles are "mine"); the server verifies the token.
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), "=")));
      return String(claims.sub || claims.userId || "");
    } catch {
      return "";
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", // the bearer token alone: a staff admin session must not change who we are
      cache: "no-store",
    });
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function attachmentLink(attachmentId) {
    return api("GET", `/api/attachments/${encodeURIComponent(attachmentId)}/link`);
  }

  function conversationPath(suffix = "") {
    return `/api/conversations/${encodeURIComponent(state.conversationId)}${suffix}`;
  }

  // ---- rendering -----------------------------------------------------------------------------------

  // Staff by their display name (never a username; the server never sends one to donors).
  function staffName(name) {
    return !name || name === STAFF_FALLBACK_NAME ? t("Support") : name;
  }

  function senderLabel(data) {
    if (data.senderId === state.me) return t("You");
    if (STAFF_ROLES.has(data.senderRole)) return staffName(data.senderName);
    return data.senderId;
  }

  // Whose words a quote shows. The donor is the conversation's one USER, so a quoted USER message is theirs.
  function quoteLabel(reply) {
    if (reply.senderRole === "USER") return t("You");
    return STAFF_ROLES.has(reply.senderRole) ? staffName(reply.senderName) : reply.senderName || "";
  }

  // What a quote of this message says, cut as the server cuts it, so a live edit reads like a reload.
  function previewOf(content) {
    const text = String(content || "").split(/\s+/).filter(Boolean).join(" ");
    return text.length > REPLY_PREVIEW_LENGTH ? `${text.slice(0, REPLY_PREVIEW_LENGTH - 1)}…` : text;
  }

  const ICONS = {
    react: ["M12 3a9 9 0 1 0 9 9", "M8.5 14.5s1.3 1.5 3.5 1.5 3.5-1.5 3.5-1.5", "M9 9.5h.01", "M15 9.5h.01", "M19 2v6", "M16 5h6"],
    reply: ["M9 17l-5-5 5-5", "M4 12h11a5 5 0 0 1 5 5v2"],
    edit: ["M12 20h9", "M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z"],
    delete: ["M3 6h18", "M8 6V4h8v2", "M19 6l-1 14H6L5 6", "M10 11v6", "M14 11v6"],
    lock: ["M5 11h14v10H5z", "M8 11V7a4 4 0 0 1 8 0v4"],
  };

  function icon(name) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "icon");
    for (const d of ICONS[name]) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.append(path);
    }
    return svg;
  }

  // A button inside a bubble. Out of the Tab order until focus is in its bubble (see setActive), so Tab
  // does not walk through every message on its way to the composer. `key` finds it again after a rebuild.
  function bubbleButton(className, label, key, content) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = className;
    button.tabIndex = -1;
    button.dataset.focusKey = key;
    if (label) {
      button.setAttribute("aria-label", label);
      button.title = label;
    }
    button.append(content);
    return button;
  }

  function isMine(data) {
    return data.messageType !== "SYSTEM" && data.senderId === state.me;
  }

  // Editable: the donor's own text, not deleted, while the server's window is open.
  function editableFor(data) {
    if (!isMine(data) || data.deletedAt || data.messageType !== "TEXT" || data.editRefused || !data.createdAt) return 0;
    return Math.max(0, new Date(data.createdAt).getTime() + EDIT_WINDOW_MS - Date.now());
  }

  function quoteOf(reply) {
    const quote = document.createElement("div");
    quote.className = "quote";
    const who = document.createElement("span");
    who.className = "quote-sender";
    who.textContent = quoteLabel(reply);
    const text = document.createElement("span");
    text.className = "quote-text";
    if (reply.deletedAt) {
      text.classList.add("quote-deleted");
      text.textContent = t("Deleted message");
    } else {
      text.textContent = reply.preview; // user data: textContent only
    }
    quote.append(who, text);
    return quote;
  }

  // Why part of the donor's own message reads "**** 1111": the server masked it before storing it.
  function redactionNotice(metadata) {
    const kinds = Array.isArray(metadata.redacted) ? metadata.redacted : [];
    if (!kinds.length) return null;
    const notice = document.createElement("p");
    notice.className = "redacted";
    const card = kinds.includes("card");
    const account = kinds.includes("iban");
    let text = t("Card number hidden for your safety");
    if (card && account) text = t("Card and account numbers hidden for your safety");
    else if (account) text = t("Account number hidden for your safety");
    notice.append(icon("lock"), text);
    return notice;
  }

  function reactionChips(data) {
    const row = document.createElement("div");
    row.className = "reactions";
    for (const reaction of data.reactions || []) {
      const mine = (reaction.userIds || []).includes(state.me);
      const count = Number(reaction.count || 0).toLocaleString(LOCALE);
      const chip = bubbleButton("reaction", null, `reaction:${reaction.emoji}`, "");
      const emoji = document.createElement("span");
      emoji.className = "reaction-emoji";
      emoji.textContent = reaction.emoji;
      const number = document.createElement("span");
      number.className = "reaction-count";
      number.textContent = count;
      chip.replaceChildren(emoji, number);
      chip.setAttribute("aria-pressed", String(mine));
      chip.title = mine ? t("Remove your reaction") : format("React with %(emoji)s", { emoji: reaction.emoji });
      chip.addEventListener("click", () => react(data.messageId, reaction.emoji, !mine));
      row.append(chip);
    }
    return row;
  }

  function actionBar(data) {
    const bar = document.createElement("div");
    bar.className = "actions";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", t("Message actions"));
    const reactButton = bubbleButton("action", t("Add a reaction"), "react", icon("react"));
    reactButton.setAttribute("aria-expanded", "false");
    reactButton.addEventListener("click", () => togglePicker(data.messageId));
    const reply = bubbleButton("action", t("Reply"), "reply", icon("reply"));
    reply.addEventListener("click", () => startReply(data.messageId));
    bar.append(reactButton, reply);
    if (editableFor(data) > 0) {
      const edit = bubbleButton("action", t("Edit"), "edit", icon("edit"));
      edit.addEventListener("click", () => startEdit(data.messageId));
      bar.append(edit);
    }
    if (isMine(data)) {
      const remove = bubbleButton("action", t("Delete"), "delete", icon("delete"));
      remove.addEventListener("click", () => deleteMessage(data.messageId));
      bar.append(remove);
    }
    return bar;
  }

  function buildBubble(data, { pending = false } = {}) {
    const li = document.createElement("li");
    li.className = "message";
    const system = data.messageType === "SYSTEM";
    const mine = isMine(data);
    const deleted = Boolean(data.deletedAt);
    if (system) li.classList.add("system");
    else if (mine) li.classList.add("mine");
    else li.classList.add("theirs");
    if (deleted) li.classList.add("deleted");

    if (!system) {
      const meta = document.createElement("div");
      meta.className = "meta";
      const who = document.createElement("span");
      who.className = "sender";
      who.textContent = senderLabel(data);
      meta.append(who);
      if (data.createdAt) {
        const time = document.createElement("time");
        time.dateTime = data.createdAt;
        time.textContent = formatWhen(data.createdAt);
        time.title = new Date(data.createdAt).toLocaleString(LOCALE);
        meta.append(time);
      }
      if (data.editedAt && !deleted) {
        const edited = document.createElement("span");
        edited.className = "edited";
        edited.textContent = t("edited");
        edited.title = format("Edited %(when)s", { when: new Date(data.editedAt).toLocaleString(LOCALE) });
        meta.append(edited);
      }
      if (mine && !deleted) {
        const tick = document.createElement("span");
        tick.className = "tick";
        tick.setAttribute("role", "img");
        meta.append(tick);
      }
      li.append(meta);
    }
    if (deleted) {
      // A tombstone keeps its place and who wrote it; nothing of what it said, and nothing to do with it.
      const content = document.createElement("p");
      content.className = "content tombstone";
      content.textContent = t("This message was deleted");
      li.append(content);
    } else {
      if (data.replyTo) li.append(quoteOf(data.replyTo));
      const metadata = data.metadata || {};
      const file = data.messageType === "FILE" && (metadata.attachmentId || metadata.url);
      if (file) {
        window.ChatAttachments.renderFile(li, metadata, { getLink: attachmentLink, locale: LOCALE });
      }
      // A file's caption is shown when it says more than the file's name.
      if (!file || (data.content && data.content !== metadata.name)) {
        const content = document.createElement("p");
        content.className = "content";
        content.textContent = data.content; // never innerHTML: this is user data
        li.append(content);
      }
      if (mine) {
        const notice = redactionNotice(metadata);
        if (notice) li.append(notice);
      }
    }
    if (pending) {
      li.classList.add("pending");
      li.dataset.clientMessageId = data.clientMessageId;
    } else {
      li.dataset.messageId = data.messageId;
      if (!system && !deleted) {
        if ((data.reactions || []).length) li.append(reactionChips(data));
        li.append(actionBar(data));
        li.classList.add("actionable");
        li.tabIndex = -1; // reached with the arrow keys (see the list's keydown)
        scheduleEditExpiry(li, data);
      }
    }
    setStatus(li, pending ? "sending" : "sent");
    return li;
  }

  // The Edit button goes when the window closes (the server would refuse it from then on).
  function scheduleEditExpiry(li, data) {
    const left = editableFor(data);
    if (!left) return;
    setTimeout(() => {
      const edit = li.querySelector("[data-focus-key=edit]");
      if (!li.isConnected || !edit) return;
      if (document.activeElement === edit) li.focus();
      edit.remove();
    }, left + 250);
  }

  function setStatus(li, status) {
    li.dataset.status = status;
    const tick = li.querySelector(".tick");
    if (!tick) return;
    const labels = {
      sending: ["…", t("Sending")],
      sent: ["✓", t("Sent")],
      read: ["✓✓", t("Read")],
      failed: ["!", t("Not sent")],
    };
    const [glyph, label] = labels[status];
    tick.textContent = glyph;
    tick.setAttribute("aria-label", label);
    tick.title = label;
    tick.classList.toggle("read", status === "read");
  }

  function nearBottom() {
    return ui.list.scrollHeight - ui.list.scrollTop - ui.list.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.list.scrollTop = ui.list.scrollHeight;
  }

  function firstPendingElement() {
    const first = state.pending.values().next();
    return first.done ? null : first.value.el;
  }

  function normalise(frame) {
    if (frame.type !== "system") return frame;
    return {
      messageId: frame.messageId,
      senderId: frame.senderId,
      senderRole: frame.senderRole,
      content: frame.message,
      messageType: "SYSTEM",
      metadata: frame.metadata,
      createdAt: frame.timestamp,
      readBy: [],
    };
  }

  function isOthers(data) {
    return data.messageType !== "SYSTEM" && data.senderId !== state.me;
  }

  // A confirmed message at the end of the conversation. `stream`: it came in order (socket or latest
  // history page) and may move resumeFrom.
  function receive(data, { stream }) {
    const wasNearBottom = nearBottom();
    const known = state.messages.get(data.messageId);
    if (known) {
      if (stream && !known.anchored) {
        // Stored earlier by the REST fallback; the stream now shows where it really belongs.
        state.order.splice(state.order.indexOf(data.messageId), 1);
        state.order.push(data.messageId);
        ui.list.insertBefore(known.el, firstPendingElement());
        known.anchored = true;
      }
    } else {
      const own = data.clientMessageId && data.senderId === state.me ? state.pending.get(data.clientMessageId) : null;
      const el = buildBubble(data);
      if (own) {
        own.el.replaceWith(el);
        state.pending.delete(data.clientMessageId);
      }
      ui.list.insertBefore(el, firstPendingElement());
      state.messages.set(data.messageId, { data, el, anchored: stream });
      state.order.push(data.messageId);
      if (isOthers(data)) observeForRead(el);
      if (Array.isArray(data.readBy) && data.readBy.some((r) => r.userId !== state.me)) {
        markReadUpTo(data.messageId);
      }
      if (state.lateReceipts.delete(data.messageId)) markReadUpTo(data.messageId);
      if (isOthers(data)) stopRemoteTyping(data.senderId);
    }
    if (stream) state.resumeFrom = data.messageId;
    if (wasNearBottom || data.senderId === state.me) scrollToBottom();
  }

  // Older messages (chronological) in front of everything shown.
  function prepend(messages) {
    const before = ui.list.scrollHeight;
    const anchor = state.order.length ? state.messages.get(state.order[0]).el : ui.list.firstChild;
    const added = [];
    for (const data of messages) {
      if (state.messages.has(data.messageId)) continue;
      const el = buildBubble(data);
      ui.list.insertBefore(el, anchor);
      state.messages.set(data.messageId, { data, el, anchored: true });
      added.push(data.messageId);
      if (isOthers(data)) observeForRead(el);
    }
    state.order.unshift(...added);
    if (state.readSentIndex >= 0) state.readSentIndex += added.length; // indexes shifted by the prepended ones
    for (const id of added) {
      const { data } = state.messages.get(id);
      if (Array.isArray(data.readBy) && data.readBy.some((r) => r.userId !== state.me)) markReadUpTo(id);
    }
    ui.list.scrollTop += ui.list.scrollHeight - before; // keep the reader's place
  }

  // A receipt from someone else covers every message up to and including this one.
  function markReadUpTo(messageId) {
    const index = state.order.indexOf(messageId);
    if (index < 0) {
      state.lateReceipts.add(messageId);
      return;
    }
    for (let i = index; i >= 0; i--) {
      const { data, el } = state.messages.get(state.order[i]);
      if (data.senderId !== state.me || data.messageType === "SYSTEM") continue;
      if (el.dataset.status === "read") break; // everything before it is read already
      setStatus(el, "read");
    }
  }

  // ---- changes to messages already shown (edits, deletions, reactions) -------------------------------

  function noteCursor(value) {
    const cursor = Number(value);
    if (Number.isSafeInteger(cursor) && (state.changeCursor === null || cursor > state.changeCursor)) {
      state.changeCursor = cursor;
    }
  }

  // Builds a shown bubble again from its (new) data, keeping its read tick and the keyboard's place.
  function rebuild(entry) {
    if (entry.editing) {
      entry.stale = true; // rebuilt when the edit ends, so what the donor is typing is not thrown away
      return;
    }
    const old = entry.el;
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    const key = focused && focused.dataset.focusKey;
    if (state.picker === old) state.picker = null;
    const fresh = buildBubble(entry.data);
    if (old.dataset.status === "read") setStatus(fresh, "read");
    readObserver.unobserve(old);
    old.replaceWith(fresh);
    entry.el = fresh;
    if (isOthers(entry.data)) observeForRead(fresh);
    if (state.active === old) state.active = null;
    if (focused) {
      // The same control if it is still there (a reaction chip, Reply), else the bubble, else the list.
      const same = key ? fresh.querySelector(`[data-focus-key="${CSS.escape(key)}"]`) : null;
      (same || (fresh.hasAttribute("tabindex") ? fresh : ui.list)).focus();
    }
  }

  // Replies show the message they quote as it is now: an edit or a deletion reaches the quote too.
  function refreshQuotes(messageId, change) {
    for (const entry of state.messages.values()) {
      if (entry.data.replyTo && entry.data.replyTo.messageId === messageId) {
        entry.data = { ...entry.data, replyTo: { ...entry.data.replyTo, ...change } };
        rebuild(entry);
      }
    }
    if (state.replyTo && state.replyTo.messageId === messageId) showReplying({ ...state.replyTo, ...change });
  }

  // A message as the server has it now (message_updated, or the answer to an edit or a reaction).
  function applyMessage(message) {
    const entry = state.messages.get(message.messageId);
    if (!entry) return; // not shown: its page, if ever loaded, brings it as it is then
    const before = entry.data;
    entry.data = { ...before, ...message };
    rebuild(entry);
    if (message.deletedAt && !before.deletedAt) refreshQuotes(message.messageId, { preview: "", deletedAt: message.deletedAt });
    else if (message.content !== before.content) refreshQuotes(message.messageId, { preview: previewOf(message.content) });
  }

  function applyDeleted(messageId, deletedAt) {
    const entry = state.messages.get(messageId);
    if (!entry || entry.data.deletedAt) return;
    entry.editing = false; // a deletion ends an edit: there is nothing left to edit
    entry.data = { ...entry.data, content: "", metadata: {}, reactions: [], deletedAt };
    rebuild(entry);
    refreshQuotes(messageId, { preview: "", deletedAt });
  }

  function applyReactions(messageId, reactions) {
    const entry = state.messages.get(messageId);
    if (!entry || entry.data.deletedAt) return;
    entry.data = { ...entry.data, reactions };
    rebuild(entry);
  }

  function messagePath(messageId, suffix = "") {
    return conversationPath(`/messages/${encodeURIComponent(messageId)}${suffix}`);
  }

  async function react(messageId, emoji, on) {
    closePicker();
    try {
      const path = messagePath(messageId, `/reactions/${encodeURIComponent(emoji)}`);
      applyMessage(await api(on ? "PUT" : "DELETE", path));
      showAlert("");
    } catch (error) {
      if (error.code === "message_deleted") showAlert(t("This message was deleted."));
      else showAlert(format("Your reaction was not saved: %(reason)s", { reason: error.message }));
    }
  }

  // ---- the reaction picker: one row of the allowed reactions, inside the bubble ----------------------

  function togglePicker(messageId) {
    const entry = state.messages.get(messageId);
    if (!entry) return;
    if (state.picker === entry.el) {
      closePicker({ focus: true });
      return;
    }
    closePicker();
    const li = entry.el;
    const picker = document.createElement("div");
    picker.className = "picker";
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", t("Reactions"));
    const mine = new Set((entry.data.reactions || []).filter((r) => (r.userIds || []).includes(state.me)).map((r) => r.emoji));
    for (const emoji of REACTIONS) {
      const choice = bubbleButton("pick", null, `pick:${emoji}`, emoji);
      choice.tabIndex = 0; // open because focus is here: part of the Tab order while it is open
      choice.setAttribute("aria-pressed", String(mine.has(emoji)));
      choice.addEventListener("click", () => react(messageId, emoji, !mine.has(emoji)));
      picker.append(choice);
    }
    picker.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.stopPropagation(); // Escape closes the picker, not the widget around it
      closePicker({ focus: true });
    });
    li.querySelector(".actions").after(picker);
    li.querySelector("[data-focus-key=react]").setAttribute("aria-expanded", "true");
    li.classList.add("picking");
    state.picker = li;
    picker.firstElementChild.focus();
    picker.scrollIntoView({ block: "nearest" });
  }

  function closePicker({ focus = false } = {}) {
    const li = state.picker;
    if (!li) return;
    state.picker = null;
    li.classList.remove("picking");
    const picker = li.querySelector(".picker");
    const hadFocus = picker && picker.contains(document.activeElement);
    if (picker) picker.remove();
    const button = li.querySelector("[data-focus-key=react]");
    if (button) {
      button.setAttribute("aria-expanded", "false");
      if (focus || hadFocus) button.focus();
    }
  }

  document.addEventListener("click", (event) => {
    if (state.picker && !state.picker.contains(event.target)) closePicker();
  });

  // ---- replying ----------------------------------------------------------------------------------------

  function showReplying(reply) {
    state.replyTo = reply;
    ui.replyingLabel.textContent = format("Replying to %(name)s:", { name: quoteLabel(reply) });
    ui.replyingPreview.textContent = reply.deletedAt ? t("Deleted message") : reply.preview;
    ui.replying.hidden = false;
    ui.input.setAttribute("aria-describedby", "replying composer-hint");
  }

  function startReply(messageId) {
    const entry = state.messages.get(messageId);
    if (!entry || ui.composer.hidden) return;
    const data = entry.data;
    showReplying({
      messageId,
      senderName: data.senderName,
      senderRole: data.senderRole,
      preview: previewOf(data.content),
      deletedAt: data.deletedAt || null,
    });
    ui.input.focus();
  }

  function cancelReply({ focus = false } = {}) {
    state.replyTo = null;
    ui.replying.hidden = true;
    ui.input.setAttribute("aria-describedby", "composer-hint");
    if (focus) ui.input.focus();
  }

  ui.replyCancel.addEventListener("click", () => cancelReply({ focus: true }));

  // ---- editing the donor's own message, in place -------------------------------------------------------

  function startEdit(messageId) {
    const entry = state.messages.get(messageId);
    if (!entry || entry.editing || !editableFor(entry.data)) return;
    closePicker();
    const li = entry.el;
    const form = document.createElement("form");
    form.className = "edit";
    const box = document.createElement("textarea");
    box.rows = 2;
    box.maxLength = MAX_LENGTH;
    box.value = entry.data.content;
    box.setAttribute("aria-label", t("Edit your message"));
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = t("Save");
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "secondary";
    cancel.textContent = t("Cancel");
    const buttons = document.createElement("div");
    buttons.className = "edit-buttons";
    buttons.append(cancel, save);
    form.append(box, buttons);
    const content = li.querySelector(".content");
    content.hidden = true;
    content.after(form);
    li.classList.add("editing");
    entry.editing = true;

    const finish = () => {
      entry.editing = false;
      form.remove();
      content.hidden = false;
      li.classList.remove("editing");
      if (entry.stale || entry.el !== li) {
        entry.stale = false;
        rebuild(entry);
      }
      const again = entry.el.querySelector("[data-focus-key=edit]");
      (again || entry.el).focus();
    };
    cancel.addEventListener("click", finish);
    box.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation(); // ends the edit, not the widget
        finish();
      } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = box.value;
      if (text === entry.data.content) return finish();
      if (!text.trim()) {
        showAlert(t("A message cannot be empty. To remove it, delete it instead."));
        return;
      }
      save.disabled = true;
      try {
        const message = await api("PATCH", messagePath(messageId), { content: text });
        showAlert("");
        entry.data = { ...entry.data, ...message };
        entry.stale = true;
        finish();
        refreshQuotes(messageId, { preview: previewOf(message.content) });
      } catch (error) {
        save.disabled = false;
        if (error.code === "edit_window_passed") {
          // The window closed while the donor was typing (or the clocks disagree): say so, and stop offering it.
          const minutes = Math.round(EDIT_WINDOW_MS / 60000).toLocaleString(LOCALE);
          showAlert(format("This message can no longer be changed: messages can be edited for %(minutes)s minutes after sending.", { minutes }));
          entry.data = { ...entry.data, editRefused: true };
          entry.stale = true;
          finish();
        } else if (error.code === "message_deleted") {
          showAlert(t("This message was deleted."));
          finish();
        } else {
          showAlert(format("Your change was not saved: %(reason)s", { reason: error.message }));
        }
      }
    });
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // ---- deleting the donor's own message ------------------------------------------------------------------

  function confirmDeletion() {
    return new Promise((resolve) => {
      const dialog = ui.confirmDelete;
      dialog.returnValue = "";
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "delete"), { once: true });
      dialog.showModal();
    });
  }

  // Escape closes the dialog (the browser does that); it must not also close the widget.
  ui.confirmDelete.addEventListener("keydown", (event) => {
    if (event.key === "Escape") event.stopPropagation();
  });

  async function deleteMessage(messageId) {
    closePicker();
    if (!(await confirmDeletion())) return;
    try {
      await api("DELETE", messagePath(messageId));
      showAlert("");
      applyDeleted(messageId, new Date().toISOString()); // the message_deleted frame brings the server's time
    } catch (error) {
      showAlert(format("The message was not deleted: %(reason)s", { reason: error.message }));
    }
  }

  // ---- moving between messages with the keyboard ------------------------------------------------------

  // Only the bubble focus is in has its buttons in the Tab order: the list stays one Tab stop.
  function setActive(li) {
    if (state.active === li) return;
    if (state.active) {
      state.active.classList.remove("active");
      state.active.querySelectorAll(".actions button, .reactions button").forEach((b) => { b.tabIndex = -1; });
    }
    state.active = li;
    if (li) {
      li.classList.add("active");
      li.querySelectorAll(".actions button, .reactions button").forEach((b) => { b.tabIndex = 0; });
    }
  }

  ui.list.addEventListener("focusin", (event) => {
    const li = event.target.closest("li.actionable");
    setActive(li && ui.list.contains(li) ? li : null);
  });
  ui.list.addEventListener("focusout", (event) => {
    if (!ui.list.contains(event.relatedTarget)) setActive(null);
  });
  ui.list.addEventListener("keydown", (event) => {
    const keys = ["ArrowUp", "ArrowDown", "Home", "End"];
    if (!keys.includes(event.key) || event.target.closest("textarea, input")) return;
    const items = Array.from(ui.list.querySelectorAll("li.actionable"));
    if (!items.length) return;
    const current = event.target.closest("li.actionable");
    let index = current ? items.indexOf(current) : -1;
    if (event.key === "Home") index = 0;
    else if (event.key === "End" || index < 0) index = items.length - 1;
    else if (event.key === "ArrowUp") index = Math.max(0, index - 1);
    else index = Math.min(items.length - 1, index + 1);
    event.preventDefault();
    items[index].focus();
    items[index].scrollIntoView({ block: "nearest" });
  });

  // ---- read receipts we send -------------------------------------------------------------------------

  const readObserver = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const id = entry.target.dataset.messageId;
        if (entry.isIntersecting) state.visibleOthers.add(id);
        else state.visibleOthers.delete(id);
      }
      scheduleRead();
    },
    { root: ui.list, threshold: 0.5 },
  );

  function observeForRead(el) {
    readObserver.observe(el);
  }

  function scheduleRead() {
    if (state.readTimer) return;
    state.readTimer = setTimeout(() => {
      state.readTimer = null;
      flushRead();
    }, 200);
  }

  // Read up to the newest message of the other side that is on screen while the page is visible.
  function flushRead() {
    if (document.visibilityState !== "visible") return;
    let newest = -1;
    for (const id of state.visibleOthers) newest = Math.max(newest, state.order.indexOf(id));
    if (newest <= state.readSentIndex) return;
    const messageId = state.order[newest];
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: "read", messageId }));
    } else {
      api("PUT", conversationPath("/read"), { messageId }).catch(() => {
        state.readSentIndex = -1; // retried when the socket opens
      });
    }
    state.readSentIndex = newest;
  }

  document.addEventListener("visibilitychange", scheduleRead);

  // ---- typing --------------------------------------------------------------------------------------

  function sendTyping(isTyping) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
    state.ws.send(JSON.stringify({ type: "typing", isTyping }));
  }

  function onOwnInput() {
    const now = Date.now();
    if (ui.input.value.trim() && (!state.typingOn || now - state.typingSentAt >= TYPING_REFRESH_MS)) {
      sendTyping(true);
      state.typingOn = true;
      state.typingSentAt = now;
    }
    clearTimeout(state.typingIdleTimer);
    state.typingIdleTimer = setTimeout(stopOwnTyping, TYPING_IDLE_MS);
  }

  function stopOwnTyping() {
    clearTimeout(state.typingIdleTimer);
    if (!state.typingOn) return;
    state.typingOn = false;
    sendTyping(false);
  }

  function renderRemoteTyping() {
    ui.typing.textContent = state.remoteTypers.size ? t("Support is typing…") : "";
  }

  function startRemoteTyping(userId) {
    clearTimeout(state.remoteTypers.get(userId));
    state.remoteTypers.set(
      userId,
      setTimeout(() => stopRemoteTyping(userId), REMOTE_TYPING_TIMEOUT_MS),
    );
    renderRemoteTyping();
  }

  function stopRemoteTyping(userId) {
    if (!state.remoteTypers.has(userId)) return;
    clearTimeout(state.remoteTypers.get(userId));
    state.remoteTypers.delete(userId);
    renderRemoteTyping();
  }

  // ---- sending -------------------------------------------------------------------------------------

  async function send() {
    const content = ui.input.value;
    if (!content.trim()) return;
    if (content.length > MAX_LENGTH) {
      showAlert(format("A message can be at most %(max)s characters.", { max: MAX_LENGTH.toLocaleString(LOCALE) }));
      return;
    }
    showAlert("");
    if (!state.conversationId) {
      // Taken out of the box first, so a second Enter while the conversation is being created sends nothing;
      // put back if it cannot be created.
      ui.input.value = "";
      if (!(await ensureConversation())) {
        ui.input.value = content;
        return;
      }
    }
    const clientMessageId = randomId();
    const replyTo = state.replyTo;
    const el = buildBubble(
      { clientMessageId, content, senderId: state.me, senderRole: "USER", messageType: "TEXT", replyTo },
      { pending: true },
    );
    ui.list.append(el); // unsent bubbles stay below every confirmed message
    state.pending.set(clientMessageId, { content, el, replyTo });
    ui.input.value = "";
    cancelReply();
    stopOwnTyping();
    scrollToBottom();
    transmit(clientMessageId);
  }

  function transmit(clientMessageId) {
    const item = state.pending.get(clientMessageId);
    if (!item) return;
    const message = { content: item.content, clientMessageId };
    if (item.metadata) Object.assign(message, { messageType: "FILE", metadata: item.metadata });
    if (item.replyTo) message.replyTo = item.replyTo.messageId;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: "message", ...message }));
      return;
    }
    // The socket is down: REST stores it now; the same clientMessageId makes any later resend a no-op.
    api("POST", conversationPath("/messages"), message)
      .then((message) => receive(message, { stream: false }))
      .catch((error) => {
        if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
          setStatus(item.el, "failed");
          item.el.classList.add("failed");
          state.pending.delete(clientMessageId);
          showAlert(format("Not sent: %(reason)s", { reason: error.message }));
        }
        // Network failure: it stays pending and goes out over the socket once it is back.
      });
  }

  // ---- attachments ---------------------------------------------------------------------------------

  // Each file is uploaded with a progress bar in its own bubble, then sent as a FILE message that names the
  // upload (the server describes the file). A refused file says why and leaves nothing behind.
  async function attach(files) {
    if (files.length && !(await ensureConversation())) return;
    for (const file of files) {
      if (ATTACHMENT_MAX_BYTES && file.size > ATTACHMENT_MAX_BYTES) {
        const limit = window.ChatAttachments.formatSize(ATTACHMENT_MAX_BYTES, LOCALE);
        showAlert(format("“%(name)s” is larger than %(limit)s, the most a file may be.", { name: file.name, limit }));
        continue;
      }
      await attachOne(file);
    }
  }

  async function attachOne(file) {
    const li = document.createElement("li");
    li.className = "message mine pending uploading";
    const label = document.createElement("p");
    label.className = "content";
    label.textContent = `${file.name} (${window.ChatAttachments.formatSize(file.size, LOCALE)})`;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", format("Uploading %(name)s", { name: file.name }));
    li.append(label, bar);
    ui.list.append(li);
    scrollToBottom();
    let attachment;
    try {
      attachment = await window.ChatAttachments.upload(conversationPath("/attachments"), file, {
        token: state.token,
        onProgress: (done) => {
          bar.value = done;
        },
      });
    } catch (error) {
      li.remove();
      showAlert(format("“%(name)s” was not sent: %(reason)s", { name: file.name, reason: error.detail }));
      return;
    }
    const clientMessageId = randomId();
    const data = {
      clientMessageId,
      content: attachment.name,
      senderId: state.me,
      senderRole: "USER",
      messageType: "FILE",
      metadata: attachment,
    };
    const el = buildBubble(data, { pending: true });
    li.replaceWith(el);
    state.pending.set(clientMessageId, { content: attachment.name, el, metadata: { attachmentId: attachment.attachmentId } });
    transmit(clientMessageId);
  }

  ui.attach.addEventListener("click", () => ui.file.click());
  ui.file.addEventListener("change", () => {
    const files = Array.from(ui.file.files);
    ui.file.value = ""; // the same file can be chosen again
    attach(files);
  });
  // Dropping files anywhere on an open conversation attaches them; the drop zone shows while dragging.
  let dragDepth = 0;
  ui.chat.addEventListener("dragenter", (event) => {
    if (ui.composer.hidden || !event.dataTransfer.types.includes("Files")) return;
    dragDepth += 1;
    ui.chat.classList.add("dropping");
  });
  ui.chat.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) ui.chat.classList.remove("dropping");
  });
  ui.chat.addEventListener("dragover", (event) => {
    if (!ui.composer.hidden && event.dataTransfer.types.includes("Files")) event.preventDefault();
  });
  ui.chat.addEventListener("drop", (event) => {
    dragDepth = 0;
    ui.chat.classList.remove("dropping");
    if (ui.composer.hidden || !event.dataTransfer.files.length) return;
    event.preventDefault();
    attach(Array.from(event.dataTransfer.files));
  });
  // A pasted screenshot is a file too.
  ui.input.addEventListener("paste", (event) => {
    const files = Array.from(event.clipboardData ? event.clipboardData.files : []);
    if (!files.length) return;
    event.preventDefault();
    attach(files);
  });

  function resendPending() {
    for (const clientMessageId of state.pending.keys()) transmit(clientMessageId);
  }

  // ---- the socket ----------------------------------------------------------------------------------

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = new URLSearchParams({ token: state.token });
    if (state.resumeFrom) query.set("lastMessageId", state.resumeFrom);
    // Edits, deletions and reactions since the last change seen come first, then missed messages.
    if (state.changeCursor !== null) query.set("changedSince", String(state.changeCursor));
    const fromScratch = !state.resumeFrom;
    setConnection(state.attempt ? "reconnecting" : "connecting", state.attempt ? t("Reconnecting…") : t("Connecting…"));
    const ws = new WebSocket(`${scheme}://${location.host}/ws/conversations/${encodeURIComponent(state.conversationId)}?${query}`);
    state.ws = ws;

    ws.addEventListener("open", () => {
      setConnection(...connectedLabel());
      if (state.crowded) {
        state.crowded = false;
        showAlert("");
      }
      ws.send(JSON.stringify({ type: "ping" }));
      if (fromScratch) {
        // Nothing to resume from: fetch what may have arrived between the history request and now.
        api("GET", conversationPath(`/messages?limit=${PAGE_SIZE}`))
          .then((page) => {
            page.results.forEach((m) => receive(m, { stream: true }));
            noteCursor(page.changeCursor);
          })
          .catch(() => {});
      }
      resendPending();
      scheduleRead();
    });
    onFrames(ws, onFrame);
    ws.addEventListener("close", (event) => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.remoteTypers.forEach((_, userId) => stopRemoteTyping(userId));
      if (FATAL_CLOSE[event.code]) {
        state.stopped = true;
        state.refused = event.code === 4401; // a refreshed token (identify) may start it again
        setConnection("offline", t("Offline"));
        showAlert(FATAL_CLOSE[event.code]);
        return;
      }
      if (event.code === TOO_MANY_SOCKETS) {
        showAlert(t("This chat is open in too many windows or tabs. Close one, and this one reconnects."));
        state.crowded = true;
        state.attempt = Math.max(state.attempt, 4); // retry, but not at once: the others are still open
      }
      scheduleReconnect();
    });
  }

  // Exponential backoff with jitter, so clients dropped together do not return together.
  function backoff(attempt) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  // Each JSON frame of a socket to `handle`; anything else is not from this service and is dropped.
  function onFrames(ws, handle) {
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      handle(frame);
    });
  }

  function scheduleReconnect() {
    if (state.stopped || state.reconnectTimer) return;
    if (!navigator.onLine) {
      setConnection("offline", t("Offline: waiting for the network"));
      return; // the "online" event reconnects
    }
    const delay = backoff(state.attempt);
    state.attempt += 1;
    const seconds = Math.ceil(delay / 1000);
    setConnection("reconnecting", format("Reconnecting in %(seconds)s s…", { seconds: seconds.toLocaleString(LOCALE) }));
    state.reconnectTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", () => {
    if (state.conversationId && !state.ws && !state.stopped) connect();
  });
  window.addEventListener("offline", () => {
    if (state.ws) state.ws.close();
  });

  function onFrame(frame) {
    switch (frame.type) {
      case "message_sent":
      case "message_received":
      case "system":
        receive(normalise(frame), { stream: true });
        followStatus(frame.metadata || {});
        break;
      case "message_updated":
        noteCursor(frame.changeCursor);
        if (frame.message) applyMessage(frame.message);
        break;
      case "message_deleted":
        noteCursor(frame.changeCursor);
        applyDeleted(frame.messageId, frame.deletedAt);
        break;
      case "reaction_updated":
        noteCursor(frame.changeCursor);
        applyReactions(frame.messageId, frame.reactions || []);
        break;
      case "typing_start":
        if (frame.userId !== state.me) startRemoteTyping(frame.userId);
        break;
      case "typing_stop":
        stopRemoteTyping(frame.userId);
        break;
      case "read_receipt":
        if (frame.userId !== state.me) markReadUpTo(frame.messageId);
        break;
      case "pong":
        state.attempt = 0; // the server answers: the next drop starts the backoff from the bottom again
        break;
      case "error":
        if (frame.code === "unavailable" || frame.code === "rate_limited") {
          setTimeout(resendPending, 2000); // idempotent: the clientMessageId never duplicates
        } else {
          showAlert(frame.message || frame.code);
        }
        break;
      default:
        break; // user_joined, user_left: nothing to show
    }
  }

  // ---- history -------------------------------------------------------------------------------------

  function cursorFrom(link) {
    if (!link) return null;
    return new URL(link, location.href).searchParams.get("before");
  }

  async function loadOlder() {
    if (!state.olderCursor || state.loadingOlder) return;
    state.loadingOlder = true;
    try {
      const page = await api(
        "GET",
        conversationPath(`/messages?limit=${PAGE_SIZE}&before=${encodeURIComponent(state.olderCursor)}`),
      );
      prepend(page.results);
      state.olderCursor = cursorFrom(page.next);
      ui.loadOlder.hidden = !state.olderCursor;
    } catch (error) {
      showAlert(format("Could not load older messages: %(reason)s", { reason: error.message }));
    } finally {
      state.loadingOlder = false;
    }
  }

  ui.list.addEventListener("scroll", () => {
    if (ui.list.scrollTop < 40) loadOlder();
  });
  ui.loadOlder.addEventListener("click", loadOlder);

  // ---- the satisfaction survey (README, "Satisfaction survey") -------------------------------------

  // Status notices move the page live: the close notice (metadata.kind "csat_request") asks for a rating
  // and ends the conversation on this side; a reopen (status ACTIVE) withdraws both.
  function followStatus(metadata) {
    if (metadata.kind === "csat_request") {
      state.rated = false;
      showCsat(true);
    } else if (metadata.event === "status_changed" && metadata.status === "ACTIVE") {
      showCsat(false);
    }
    if (metadata.event === "status_changed" && metadata.status) showStatus(metadata.status);
  }

  // An ACTIVE conversation has the composer; a CLOSED or ARCHIVED one has, in its place, what happened
  // and a way to start a new one. A draft in the composer is kept (and goes to the new conversation).
  // Connected to a conversation that ended: the pill says so rather than a green "Online".
  function connectedLabel() {
    if (state.status === "CLOSED") return ["ended", t("Closed")];
    if (state.status === "ARCHIVED") return ["ended", t("Archived")];
    return ["online", t("Online")];
  }

  function showStatus(status) {
    state.status = status;
    if (state.ws && state.ws.readyState === WebSocket.OPEN) setConnection(...connectedLabel());
    const ended = status === "CLOSED" || status === "ARCHIVED";
    const hadFocus = document.activeElement === ui.input;
    ui.composer.hidden = ended;
    // No composer, nothing to reply with; an archived conversation is read-only altogether (chat.css).
    ui.chat.dataset.status = status;
    ui.ended.hidden = !ended;
    ui.endedText.textContent =
      status === "ARCHIVED"
        ? t("This conversation was archived. It can no longer be answered.")
        : t("This conversation was closed.");
    if (ended) {
      stopOwnTyping();
      if (hadFocus) ui.startNew.focus(); // the focused box went away: keep the keyboard somewhere useful
    }
  }

  ui.startNew.addEventListener("click", async () => {
    const draft = ui.input.value;
    const token = state.token;
    ui.startNew.disabled = true;
    closeConversation();
    state.token = token;
    try {
      if (await openConversation(token, "", t("Support Request"))) {
        ui.input.value = draft; // nothing typed is lost
        ui.input.focus();
      }
    } finally {
      ui.startNew.disabled = false;
    }
  });

  function showCsat(shown) {
    ui.csat.hidden = !shown || state.rated;
    ui.csatThanks.hidden = !(shown && state.rated);
  }

  ui.csat.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = ui.csat.querySelector("input[name=csat-rating]:checked");
    if (!chosen) {
      showAlert(t("Choose a rating from 1 to 5."));
      return;
    }
    try {
      await api("POST", conversationPath("/csat"), { rating: Number(chosen.value), comment: ui.csatComment.value });
      state.rated = true;
    } catch (error) {
      if (error.code !== "csat_already_submitted") {
        showAlert(format("Could not send your rating: %(reason)s", { reason: error.message }));
        return;
      }
      state.rated = true; // another tab sent it: thank this one too
    }
    showAlert("");
    showCsat(true);
  });

  // ---- email notifications -------------------------------------------------------------------------

  // The switch shows only when the service knows an address (the token's email claim): without one it
  // would promise emails that cannot be sent.
  async function loadNotificationChoice() {
    try {
      const choice = await api("GET", "/api/me/notifications");
      ui.notifyEmail.checked = choice.email;
      ui.notify.hidden = !choice.emailAddressKnown;
    } catch {
      ui.notify.hidden = true;
    }
  }

  ui.notifyEmail.addEventListener("change", async () => {
    const wanted = ui.notifyEmail.checked;
    ui.notifyEmail.disabled = true;
    try {
      const choice = await api("PUT", "/api/me/notifications", { email: wanted });
      ui.notifyEmail.checked = choice.email;
    } catch {
      ui.notifyEmail.checked = !wanted;
      showAlert(t("Your email preference could not be saved. Please try again."));
    } finally {
      ui.notifyEmail.disabled = false;
    }
  });

  // ---- opening a conversation ----------------------------------------------------------------------

  async function openConversation(token, conversationId, subject, { quiet = false } = {}) {
    state.token = token;
    state.me = userFromToken(token);
    showAlert("");
    try {
      if (!conversationId) {
        const created = await api("POST", "/api/conversations", { subject: subject || "Support Request", metadata: {} });
        conversationId = created.conversationId;
      }
      state.conversationId = conversationId;
      const conversation = await api("GET", conversationPath());
      const page = await api("GET", conversationPath(`/messages?limit=${PAGE_SIZE}`));
      ui.title.textContent = conversation.subject || t("Conversation");
      ui.title.title = conversation.conversationId;
      showChat();
      if (EMBED) toHost({ type: "conversation", conversationId });
      page.results.forEach((message) => receive(message, { stream: true }));
      noteCursor(page.changeCursor);
      // Rated already if the latest rating came after the latest close (a reopened and closed again
      // conversation asks again). ISO times of one format compare as text.
      const asked = page.results.filter((m) => (m.metadata || {}).kind === "csat_request").pop();
      state.rated = Boolean(conversation.csat) && (!asked || conversation.csat.submittedAt >= asked.createdAt);
      showCsat(conversation.status === "CLOSED");
      showStatus(conversation.status);
      state.olderCursor = cursorFrom(page.next);
      ui.loadOlder.hidden = !state.olderCursor;
      scrollToBottom();
      connect();
      loadNotificationChoice();
      return true;
    } catch (error) {
      state.conversationId = null;
      const reasons = {
        401: t("Your access token was refused or has expired."),
        404: t("This conversation does not exist, or you do not take part in it."),
      };
      if (!quiet) showAlert(reasons[error.status] || format("Could not open the chat: %(reason)s", { reason: error.message }));
      if (!EMBED) {
        ui.signedOut.hidden = false;
        ui.chat.hidden = true;
      }
      return false;
    }
  }

  let focusOnShow = false; // the widget's panel was opened while the conversation was still loading
  function showChat() {
    if (ui.signedOut) ui.signedOut.hidden = true;
    if (ui.developer) ui.developer.hidden = true;
    if (ui.waiting) ui.waiting.hidden = true;
    ui.chat.hidden = false;
    if (focusOnShow && !ui.composer.hidden) ui.input.focus();
    focusOnShow = false;
  }

  // The widget before the donor's first message: the composer, and a conversation once they write.
  function showFresh() {
    ui.title.textContent = t("How can we help?");
    ui.title.title = "";
    showChat();
    showStatus("ACTIVE");
    showCsat(false);
    ui.loadOlder.hidden = true;
  }

  // One conversation however many sends or drops race to create it (two Enters in the fresh widget).
  let creating = null;
  async function ensureConversation() {
    if (state.conversationId) return true;
    if (!creating) {
      creating = openConversation(state.token, "", t("Support Request")).finally(() => {
        creating = null;
      });
    }
    return creating;
  }

  if (ui.openForm) ui.openForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = ui.openToken.value.trim();
    if (!token) {
      showAlert(t("Enter your access token."));
      ui.openToken.focus();
      return;
    }
    if (await openConversation(token, ui.openConversation.value.trim(), ui.openSubject.value.trim())) {
      ui.openToken.value = "";
      ui.input.focus(); // the form is gone: continue where the user will type
    }
  });

  // ---- the widget (embed mode) -----------------------------------------------------------------------

  let hostOrigin = null; // the allowed origin the host's messages came from; ours go only there
  const unread = new Map(); // conversationId -> the donor's unread count, for the launcher's badge
  const inbox = { ws: null, attempt: 0, timer: null };

  function toHost(message) {
    if (hostOrigin) window.parent.postMessage({ source: "careforall-chat", ...message }, hostOrigin);
  }

  async function identify(token, remembered) {
    const person = userFromToken(token);
    if (state.token && person !== state.me) {
      // Another donor on the same page (the host switched accounts): nothing of the previous one may go on.
      closeConversation();
      stopInbox();
      unread.clear();
      publishUnread();
      state.token = null;
      remembered = null;
    }
    const refresh = Boolean(state.token);
    state.token = token; // a refreshed token: every later request and reconnect uses it
    state.me = person;
    if (refresh) {
      // Sockets a stale token had closed (4401) start again with this one.
      if (state.refused && state.conversationId) {
        state.refused = false;
        state.stopped = false;
        showAlert("");
        connect();
      }
      if (!inbox.ws) watchInbox();
      return;
    }
    watchInbox();
    if (remembered && (await openConversation(token, remembered, "", { quiet: true }))) return;
    await resume(token);
  }

  // Signed in without a conversation named: the latest one still open, else a fresh start.
  async function resume(token) {
    state.token = token;
    state.me = userFromToken(token);
    try {
      // Newest activity first: the latest conversation still open continues; otherwise a fresh start.
      const list = await api("GET", "/api/conversations?limit=20");
      const active = list.results.find((c) => c.status === "ACTIVE");
      if (active && (await openConversation(token, active.conversationId, "", { quiet: true }))) return;
      showFresh();
    } catch (error) {
      if (ui.waiting) ui.waiting.hidden = true;
      showAlert(error.status === 401 ? t("We could not confirm who you are. Please sign in again.") : error.message);
    }
  }

  function publishUnread() {
    let total = 0;
    for (const count of unread.values()) total += count;
    const label = plural("Chat with support, %(count)s unread", "Chat with support, %(count)s unread", total, {
      count: total.toLocaleString(LOCALE),
    });
    const badge = total > 99 ? `${(99).toLocaleString(LOCALE)}+` : total.toLocaleString(LOCALE);
    toHost({ type: "unread", count: total, label, badge });
  }

  // The donor's inbox socket feeds the launcher's badge: the list over REST once the socket is open, then
  // its events (README, "The inbox socket"), with backoff after a drop.
  function watchInbox() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws/inbox?${new URLSearchParams({ token: state.token })}`);
    inbox.ws = ws;
    ws.addEventListener("open", async () => {
      inbox.attempt = 0;
      try {
        const list = await api("GET", "/api/conversations?limit=100");
        unread.clear();
        for (const c of list.results) unread.set(c.conversationId, c.unreadCount || 0);
        publishUnread();
      } catch {
        // the events still arrive; the next reconnect reloads
      }
    });
    onFrames(ws, (frame) => {
      if (frame.conversation) unread.set(frame.conversation.conversationId, frame.conversation.unreadCount || 0);
      else if (frame.type === "inbox_message" || frame.type === "conversation_read") {
        unread.set(frame.conversationId, frame.unreadCount || 0);
      }
      else return;
      publishUnread();
    });
    ws.addEventListener("close", (event) => {
      if (inbox.ws !== ws) return;
      if (FATAL_CLOSE[event.code]) {
        inbox.ws = null; // a refreshed token starts it again (identify)
        return;
      }
      inbox.timer = setTimeout(watchInbox, backoff(inbox.attempt));
      inbox.attempt += 1;
    });
  }

  function stopInbox() {
    clearTimeout(inbox.timer);
    const ws = inbox.ws;
    inbox.ws = null; // its close event is then ignored
    if (ws) ws.close();
  }

  const FOCUSABLE = "button, [href], input, textarea, select, [tabindex]:not([tabindex='-1'])";
  function focusEdge(where) {
    const items = Array.from(document.querySelectorAll(FOCUSABLE)).filter(
      (el) => !el.disabled && el.tabIndex >= 0 && el.getClientRects().length > 0,
    );
    const target = where === "last" ? items[items.length - 1] : items[0];
    if (target) target.focus();
  }

  if (EMBED) {
    window.addEventListener("message", (event) => {
      // Only the page that framed us, on an allowed origin: nothing else can hand us a token.
      if (event.source !== window.parent || !WIDGET_ORIGINS.includes(event.origin)) return;
      const data = event.data;
      if (!data || typeof data !== "object" || data.source !== "careforall-chat-host") return;
      hostOrigin = event.origin;
      if (data.type === "identify" && typeof data.token === "string" && data.token) {
        const remembered = typeof data.conversationId === "string" && CONVERSATION_ID.test(data.conversationId);
        identify(data.token, remembered ? data.conversationId : null);
      }
      else if (data.type === "open") {
        // Opened before the conversation has loaded: the close button now, the message box once it shows.
        focusOnShow = ui.chat.hidden;
        (ui.chat.hidden || ui.composer.hidden ? ui.closeWidget : ui.input).focus();
      }
      else if (data.type === "focus") focusEdge(data.where);
    });
    document.addEventListener("keydown", (event) => {
      // An open picker, edit or dialog takes its own Escape first (they stop it from reaching here).
      if (event.key === "Escape" && !ui.confirmDelete.open) toHost({ type: "close" });
    });
    ui.closeWidget.addEventListener("click", () => toHost({ type: "close" }));
    // Nothing secret in it: the launcher's words in the page's language. The host answers with identify,
    // which is checked like every message.
    const labels = { open: t("Chat with support"), close: t("Close the chat"), dialog: t("Support chat") };
    window.parent.postMessage({ source: "careforall-chat", type: "ready", labels, lang: LOCALE }, "*");
  }

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && state.replyTo) {
      event.stopPropagation(); // cancels the reply, not the widget
      cancelReply();
    }
  });
  ui.input.addEventListener("input", onOwnInput);
  ui.input.addEventListener("blur", stopOwnTyping);

  // ---- start ---------------------------------------------------------------------------------------

  // Resets everything that belongs to the open conversation (another one is being opened).
  function closeConversation() {
    state.stopped = true;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (state.ws) {
      const ws = state.ws;
      state.ws = null; // its close event is then ignored
      ws.close();
    }
    readObserver.disconnect();
    state.remoteTypers.forEach((_, userId) => stopRemoteTyping(userId));
    Object.assign(state, {
      conversationId: null,
      messages: new Map(),
      order: [],
      pending: new Map(),
      lateReceipts: new Set(),
      olderCursor: null,
      resumeFrom: null,
      attempt: 0,
      stopped: false,
      refused: false,
      readSentIndex: -1,
      visibleOthers: new Set(),
      changeCursor: null,
      active: null,
      picker: null,
    });
    cancelReply();
    ui.list.replaceChildren();
    setConnection("idle", "");
  }

  // The fragment is read on load and whenever it changes (a link to another conversation, same page).
  function takeFragment() {
    if (!location.hash) return;
    const fragment = new URLSearchParams(location.hash.slice(1));
    // The token must not stay visible in the address bar or in the history entry.
    history.replaceState(null, "", location.pathname + location.search);
    const token = fragment.get("token");
    const conversation = fragment.get("conversation");
    if (token && conversation) {
      if (state.conversationId) closeConversation();
      openConversation(token, conversation);
    } else if (token) {
      if (state.conversationId) closeConversation();
      resume(token);
    } else if (conversation) {
      // A notification email's link names the conversation only: the donor signs in on the platform, which
      // opens it; the developer form has it filled in.
      ui.openConversation.value = conversation;
    }
  }

  if (!EMBED) {
    window.addEventListener("hashchange", takeFragment);
    takeFragment();
  }
})();
