// The agent workspace (plain JavaScript, no build step). Reads and writes through the REST API and the
// WebSockets like any client: the admin session authenticates them on this origin, and every write
// carries the CSRF token. Everything a person wrote goes into the page with textContent only.
//
// Order on (re)connect of the inbox socket: open the socket first, then reload the list over REST,
// then apply events on top, so nothing that happens in between is missed (README, "Inbox").
//
// Messages change after they are shown (edits, deletions, reactions): a change is applied only to a message
// already shown, by building it again from its new state; the highest change cursor seen goes with every
// reconnect of the conversation's socket (changedSince), so nothing changed while it was down is missed.
(function () {
  "use strict";

  var root = document.querySelector("[data-desk]");
  var configNode = document.getElementById("desk-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);

  function $(selector, scope) { return (scope || root).querySelector(selector); }
  function $all(selector, scope) { return Array.prototype.slice.call((scope || root).querySelectorAll(selector)); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  // ---- constants ---------------------------------------------------------------------------------
  var LIST_LIMIT = 50; // conversations per list load: the newest activity first; filters find the rest
  var HISTORY_LIMIT = 50; // messages shown when a conversation opens
  var TYPING_REFRESH_MS = 3000; // the server ends a typing state after 10 s without a refresh
  var TYPING_IDLE_MS = 2500;
  var RETRY_MAX_MS = 15000;
  // The inbox socket replays nothing, and a worker under overload may drop its events: the list is
  // reloaded this often while the page is visible, so it is never stale for long.
  var LIST_REFRESH_MS = 60000;
  // Translations (Django's JavaScript catalog, loaded first); English without it.
  var t = function (text) { return window.gettext ? window.gettext(text) : text; };
  var fmt = function (text, values) {
    return window.interpolate ? window.interpolate(t(text), values, true) : text.replace(/%\((\w+)\)s/g, function (_, k) { return values[k]; });
  };
  var FINAL_CLOSE = { 4401: t("Your session has expired: reload the page."), 4403: t("Not allowed."), 4404: t("This conversation no longer exists.") };
  // Errors of the socket that answer a message frame (the oldest unanswered send is the one refused).
  var SEND_ERRORS = ["rate_limited", "conversation_closed", "content_too_long", "blank", "required", "unavailable",
    "internal_error", "note_forbidden", "invalid_choice", "metadata_too_large", "not_a_string", "idempotency_key_reused",
    "invalid_reply_to"];

  // ---- state ---------------------------------------------------------------------------------------
  var state = {
    tab: "me",
    conversations: {}, // id -> REST representation
    order: [],
    current: null, // id of the open conversation
    agents: [],
    canned: [],
    unseen: 0, // title badge
    total: 0, // conversations matching the list's filters (the list shows the newest LIST_LIMIT)
  };
  var thread = {
    socket: null, messages: new Map(), pending: [], retry: 1000, typers: new Set(), typingSentAt: 0, typingTimer: null,
    donorRead: null, closedByUs: false,
    changeCursor: null, // the highest change number seen: a history page's changeCursor, or a change frame's
    replyTo: null, // the message the reply box answers
    active: null, // the message whose buttons are in the Tab order (focus is in it)
    picker: null, // the message whose reaction picker is open
  };
  var baseTitle = document.title;

  // ---- API ---------------------------------------------------------------------------------------
  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRFToken"] = config.csrfToken;
    return fetch(config.api + path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 204) return null;
      return response.json().then(function (data) {
        if (!response.ok) throw { status: response.status, body: data };
        return data;
      });
    });
  }
  function problem(error) {
    if (!(error && error.body)) console.error(error); // a bug of this page, not an answer of the API
    return (error && error.body && error.body.detail) || t("Something went wrong; try again.");
  }

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  // ---- formatting (one format everywhere) --------------------------------------------------------
  // The admin's formats ("20:53", "1 Dec, 20:53"), so the table and the workspace read alike.
  // The page's language (the admin renders it); English with day-first dates and a 24-hour clock.
  var LOCALE = !document.documentElement.lang || document.documentElement.lang.indexOf("en") === 0 ? "en-GB" : document.documentElement.lang;
  var timeFormat = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var dateFormat = new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  var fullFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", hourCycle: "h23" });
  function when(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return date.toDateString() === new Date().toDateString() ? timeFormat.format(date) : dateFormat.format(date);
  }
  function full(iso) { return iso ? fullFormat.format(new Date(iso)) : "—"; }
  function since(iso) {
    var minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
    if (minutes < 1) return "<" + duration(1, "minute");
    if (minutes < 60) return duration(minutes, "minute");
    var hours = Math.floor(minutes / 60);
    if (hours < 48) return duration(hours, "hour");
    return duration(Math.floor(hours / 24), "day");
  }
  function duration(value, unit) {
    return new Intl.NumberFormat(LOCALE, { style: "unit", unit: unit, unitDisplay: "short" }).format(value);
  }
  function number(value) { return Number(value).toLocaleString(LOCALE); }
  var PRIORITY = { URGENT: t("Urgent"), HIGH: t("High"), NORMAL: t("Normal"), LOW: t("Low") };
  function timeEl(iso, text) {
    var node = el("time", null, text);
    node.dateTime = iso || "";
    node.title = full(iso);
    return node;
  }

  // ---- who is who ---------------------------------------------------------------------------------
  function assignees(conversation) {
    return conversation.participants.filter(function (p) { return p.role === "ADMIN" && p.assigned; });
  }
  function isMine(conversation) {
    return assignees(conversation).some(function (p) { return p.userId === config.userId; });
  }
  function title(conversation) {
    return conversation.subject || fmt("Conversation with %(donor)s", { donor: conversation.createdBy });
  }

  // ---- the list -------------------------------------------------------------------------------------
  function filters() {
    var values = {};
    $all("[data-desk-filter]").forEach(function (input) { values[input.dataset.deskFilter] = input.value.trim(); });
    values.q = $("[data-desk-search]").value.trim();
    return values;
  }

  function listQuery() {
    var params = new URLSearchParams({ limit: String(LIST_LIMIT) });
    if (state.tab !== "all") params.set("assigned", state.tab);
    var values = filters();
    Object.keys(values).forEach(function (name) { if (values[name]) params.set(name, values[name]); });
    return "conversations?" + params.toString();
  }

  function matches(conversation) {
    var values = filters();
    if (state.tab === "me" && !isMine(conversation)) return false;
    if (state.tab === "none" && assignees(conversation).length) return false;
    if (values.status && conversation.status !== values.status) return false;
    if (values.priority && conversation.priority !== values.priority) return false;
    if (values.label && (conversation.labels || []).indexOf(values.label.toLowerCase()) < 0) return false;
    var snoozed = conversation.snoozedUntil && new Date(conversation.snoozedUntil) > new Date();
    if ((values.snoozed === "true") !== Boolean(snoozed)) return false;
    if (values.q) {
      var q = values.q.toLowerCase();
      var hay = [conversation.conversationId, conversation.createdBy].indexOf(values.q) >= 0 ||
        (conversation.subject || "").toLowerCase().indexOf(q) >= 0;
      if (!hay) return false;
    }
    return true;
  }

  function loadList() {
    return api("GET", listQuery()).then(function (page) {
      var open = state.current && state.conversations[state.current];
      state.conversations = {};
      state.order = [];
      page.results.forEach(function (c) { state.conversations[c.conversationId] = c; state.order.push(c.conversationId); });
      // The open conversation stays known (not listed) when the list's filters leave it out.
      if (open && !state.conversations[state.current]) state.conversations[state.current] = open;
      state.total = page.count;
      renderList();
    }).catch(function (error) { showError(problem(error)); });
  }

  function upsert(conversation) {
    var id = conversation.conversationId;
    var previous = state.conversations[id];
    if (previous && previous.lastMessage && !conversation.lastMessage) conversation.lastMessage = previous.lastMessage;
    state.conversations[id] = conversation;
    if (!matches(conversation)) {
      state.order = state.order.filter(function (other) { return other !== id; });
    } else if (state.order.indexOf(id) < 0) {
      state.order.unshift(id);
    }
    sortList();
    renderList();
    if (id === state.current) renderConversation(conversation);
  }

  function sortList() {
    state.order.sort(function (a, b) {
      return (state.conversations[b].updatedAt || "").localeCompare(state.conversations[a].updatedAt || "");
    });
  }

  function renderList() {
    var list = $("[data-desk-items]");
    list.textContent = "";
    state.order.forEach(function (id) {
      var c = state.conversations[id];
      var item = el("li", "desk-item");
      item.tabIndex = 0;
      item.dataset.id = id;
      item.setAttribute("aria-current", id === state.current ? "true" : "false");
      item.appendChild(el("span", "desk-item-title", title(c)));
      var time = el("span", "desk-item-time");
      time.appendChild(timeEl(c.updatedAt, when(c.updatedAt)));
      item.appendChild(time);
      var preview = c.lastMessage ? c.lastMessage.senderName + ": " + c.lastMessage.preview : t("No messages yet");
      item.appendChild(el("span", "desk-item-preview", preview));
      var badges = el("span", "desk-item-badges");
      if (c.priority && c.priority !== "NORMAL") badges.appendChild(el("span", "desk-prio " + c.priority, PRIORITY[c.priority] || c.priority));
      if (c.waitingSince && c.status === "ACTIVE") badges.appendChild(el("span", "desk-waiting", fmt("waiting %(time)s", { time: since(c.waitingSince) })));
      if (c.unreadCount) badges.appendChild(el("span", "desk-unread", number(c.unreadCount)));
      item.appendChild(badges);
      item.addEventListener("click", function () { openConversation(id); });
      item.addEventListener("keydown", function (event) { if (event.key === "Enter") openConversation(id); });
      list.appendChild(item);
    });
    var note = $("[data-desk-list-empty]");
    note.textContent = state.order.length
      ? fmt("Showing the %(shown)s most recent of %(total)s; search or filter for the others.", { shown: number(state.order.length), total: number(state.total) })
      : t("Nothing here.");
    note.hidden = state.order.length > 0 && state.total <= state.order.length;
  }

  $all("[data-desk-tab]").forEach(function (button) {
    button.addEventListener("click", function () {
      state.tab = button.dataset.deskTab;
      $all("[data-desk-tab]").forEach(function (other) { other.setAttribute("aria-selected", String(other === button)); });
      loadList();
    });
  });
  $all("[data-desk-filter]").forEach(function (input) { input.addEventListener("change", loadList); });
  var searchTimer = null;
  $("[data-desk-search]").addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(loadList, 300);
  });

  // ---- the inbox socket -----------------------------------------------------------------------------
  var inbox = { socket: null, retry: 1000 };
  function connectInbox() {
    var socket = new WebSocket(wsUrl(config.inboxPath));
    inbox.socket = socket;
    socket.addEventListener("open", function () { inbox.retry = 1000; loadList(); });
    socket.addEventListener("message", function (event) { onInbox(JSON.parse(event.data)); });
    socket.addEventListener("close", function (event) {
      if (FINAL_CLOSE[event.code]) return showError(FINAL_CLOSE[event.code]);
      setTimeout(connectInbox, inbox.retry);
      inbox.retry = Math.min(inbox.retry * 2, RETRY_MAX_MS);
    });
  }

  function onInbox(frame) {
    if (frame.type === "conversation_created") {
      upsert(frame.conversation);
      notify(t("New conversation"), title(frame.conversation), frame.conversation.conversationId);
    } else if (frame.type === "conversation_updated") {
      var wasMine = state.conversations[frame.conversation.conversationId] && isMine(state.conversations[frame.conversation.conversationId]);
      upsert(frame.conversation);
      if (!wasMine && isMine(frame.conversation)) notify(t("Assigned to you"), title(frame.conversation), frame.conversation.conversationId);
    } else if (frame.type === "inbox_message") {
      var c = state.conversations[frame.conversationId];
      if (!c) return; // not in this view: the list reloads when filters change
      c.lastMessage = { messageId: frame.messageId, senderId: frame.senderId, senderRole: frame.senderRole, senderName: frame.senderName, messageType: frame.messageType, preview: frame.preview, createdAt: frame.createdAt };
      c.updatedAt = frame.createdAt;
      c.unreadCount = frame.conversationId === state.current && !document.hidden ? 0 : frame.unreadCount;
      sortList();
      renderList();
      if (frame.senderRole === "USER" && isMine(c)) notify(fmt("%(donor)s wrote", { donor: c.createdBy }), frame.preview, frame.conversationId);
    }
  }

  // Browser notification and title badge, only when the agent is not looking at that conversation.
  function notify(heading, body, conversationId) {
    if (!document.hidden && conversationId === state.current) return;
    state.unseen += 1;
    document.title = "(" + number(state.unseen) + ") " + baseTitle;
    if (window.Notification && Notification.permission === "granted") {
      var notice = new Notification(heading, { body: body, tag: conversationId });
      notice.onclick = function () { window.focus(); openConversation(conversationId); };
    }
  }
  function clearBadge() { state.unseen = 0; document.title = baseTitle; }
  window.addEventListener("focus", clearBadge);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { clearBadge(); markRead(); } });
  function askForNotifications() {
    if (window.Notification && Notification.permission === "default") Notification.requestPermission();
    document.removeEventListener("click", askForNotifications);
  }
  document.addEventListener("click", askForNotifications); // browsers ask only after a gesture

  // ---- availability ---------------------------------------------------------------------------------
  var availability = document.querySelector("[data-desk-availability]");
  var dot = document.querySelector("[data-desk-dot]");
  function showAvailability(value) { availability.value = value; dot.className = "desk-dot " + value; }
  showAvailability(config.availability);
  availability.addEventListener("change", function () {
    api("PUT", "agents/me", { availability: availability.value })
      .then(function (me) { showAvailability(me.availability); loadAgents(); })
      .catch(function (error) { showError(problem(error)); });
  });

  function loadAgents() {
    return api("GET", "agents").then(function (agents) {
      state.agents = agents;
      var select = $("[data-desk-transfer]");
      select.textContent = "";
      select.appendChild(el("option", null, "…")).value = "";
      agents.filter(function (a) { return a.agentId !== config.userId; }).forEach(function (a) {
        var option = el("option", null, a.displayName + " (" + a.availability.toLowerCase() + ", " + a.openAssigned + "/" + a.capacity + ")");
        option.value = a.agentId;
        select.appendChild(option);
      });
      renderTeam(agents);
    }).catch(function () {});
  }

  // Each agent's availability, load and satisfaction average (README, "Satisfaction survey").
  function renderTeam(agents) {
    var team = $("[data-desk-team]");
    team.textContent = "";
    agents.forEach(function (a) {
      var item = el("li", "desk-team-member");
      item.appendChild(el("span", "desk-dot " + a.availability));
      item.appendChild(el("span", "desk-team-name", a.agentId === config.userId ? fmt("%(name)s (you)", { name: a.displayName }) : a.displayName));
      item.appendChild(el("span", "desk-team-load", fmt("%(assigned)s/%(capacity)s open", { assigned: number(a.openAssigned), capacity: number(a.capacity) })));
      var rating = a.csat
        ? "★ " + a.csat.average.toLocaleString(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + " (" + number(a.csat.count) + ")"
        : t("No ratings");
      var csat = item.appendChild(el("span", "desk-team-csat", rating));
      if (a.csat) {
        var plural = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
        csat.title = window.interpolate
          ? window.interpolate(plural("Average of %(count)s rating, 1 to 5", "Average of %(count)s ratings, 1 to 5", a.csat.count), { count: number(a.csat.count) }, true)
          : "Average of " + a.csat.count + " rating" + (a.csat.count === 1 ? "" : "s") + ", 1 to 5";
      }
      team.appendChild(item);
    });
  }

  // ---- the open conversation ---------------------------------------------------------------------
  var messages = $("[data-desk-messages]");
  var input = $("[data-desk-input]");
  var replyForm = $("[data-desk-reply]");
  var errorLine = $("[data-desk-error]");

  function showError(text) { errorLine.textContent = text || ""; errorLine.hidden = !text; }

  // The conversation's transcript for staff (text or JSON); internal notes only when asked for.
  var transcriptNotes = $("[data-desk-transcript-notes]");
  function transcriptLinks(id) {
    $all("[data-desk-transcript]").forEach(function (link) {
      var query = new URLSearchParams({ type: link.dataset.deskTranscript });
      if (transcriptNotes.checked) query.set("notes", "true");
      link.href = config.api + "conversations/" + encodeURIComponent(id) + "/transcript?" + query;
    });
  }
  transcriptNotes.addEventListener("change", function () { if (state.current) transcriptLinks(state.current); });

  function openConversation(id) {
    if (thread.socket) { thread.closedByUs = true; thread.socket.close(); }
    state.current = id;
    root.dataset.pane = "thread";
    thread.messages = new Map();
    thread.changeCursor = null;
    thread.active = null;
    thread.picker = null;
    cancelReply();
    thread.pending = [];
    thread.typers = new Set();
    thread.donorRead = null;
    messages.textContent = "";
    showError("");
    $("[data-desk-placeholder]").hidden = true;
    $("[data-desk-conversation]").hidden = false;
    renderList();
    history.replaceState(null, "", "?c=" + encodeURIComponent(id));
    transcriptLinks(id);
    var donor = null;
    api("GET", "conversations/" + encodeURIComponent(id)).then(function (conversation) {
      donor = conversation.createdBy;
      state.conversations[id] = Object.assign(state.conversations[id] || {}, conversation);
      renderConversation(conversation);
      renderContext(conversation);
      return api("GET", "conversations/" + encodeURIComponent(id) + "/messages?limit=" + HISTORY_LIMIT);
    }).then(function (page) {
      if (state.current !== id) return;
      page.results.forEach(function (m) { addMessage(m); });
      noteCursor(page.changeCursor);
      page.results.forEach(function (m) {
        if ((m.readBy || []).some(function (r) { return r.userId === donor; })) thread.donorRead = m.messageId;
      });
      renderReceipt();
      scrollToEnd();
      connectThread(id, page.results.length ? page.results[page.results.length - 1].messageId : null);
    }).catch(function (error) { showError(problem(error)); });
  }

  function connectThread(id, lastMessageId) {
    var query = new URLSearchParams();
    if (lastMessageId) query.set("lastMessageId", lastMessageId);
    // Edits, deletions and reactions since the last change seen come first, then missed messages.
    if (thread.changeCursor !== null) query.set("changedSince", String(thread.changeCursor));
    var path = config.conversationPath + encodeURIComponent(id) + (query.toString() ? "?" + query : "");
    var socket = new WebSocket(wsUrl(path));
    thread.socket = socket;
    thread.closedByUs = false;
    var connection = $("[data-desk-connection]");
    connection.textContent = t("Connecting…");
    connection.classList.remove("live");
    socket.addEventListener("open", function () {
      thread.retry = 1000;
      connection.textContent = t("Live");
      connection.classList.add("live");
      markRead();
      // sends that were refused while offline can be retried by hand; nothing is re-sent by itself
    });
    socket.addEventListener("message", function (event) { onThreadFrame(JSON.parse(event.data)); });
    socket.addEventListener("close", function (event) {
      if (socket !== thread.socket || thread.closedByUs) return;
      connection.textContent = t("Offline");
      connection.classList.remove("live");
      if (FINAL_CLOSE[event.code]) return showError(FINAL_CLOSE[event.code]);
      var last = messages.querySelector("li[data-message-id]:last-of-type");
      setTimeout(function () { if (state.current === id) connectThread(id, lastSeenId()); }, thread.retry);
      thread.retry = Math.min(thread.retry * 2, RETRY_MAX_MS);
      return last;
    });
  }

  function lastSeenId() {
    var items = messages.querySelectorAll("li[data-message-id]");
    return items.length ? items[items.length - 1].dataset.messageId : null;
  }

  function onThreadFrame(frame) {
    if (frame.type === "message_received" || frame.type === "message_sent") {
      if (frame.type === "message_sent") settlePending(frame);
      addMessage(frame);
      scrollToEnd();
      if (frame.type === "message_received") markRead();
    } else if (frame.type === "system") {
      addMessage({ messageId: frame.messageId, senderId: frame.senderId, senderRole: frame.senderRole, senderName: "", content: frame.message, messageType: "SYSTEM", createdAt: frame.timestamp, metadata: frame.metadata });
      scrollToEnd();
      refreshCurrent();
    } else if (frame.type === "message_updated") {
      noteCursor(frame.changeCursor);
      if (frame.message) applyMessage(frame.message);
    } else if (frame.type === "message_deleted") {
      noteCursor(frame.changeCursor);
      applyDeleted(frame.messageId, frame.deletedAt);
    } else if (frame.type === "reaction_updated") {
      noteCursor(frame.changeCursor);
      applyReactions(frame.messageId, frame.reactions || []);
    } else if (frame.type === "typing_start" || frame.type === "typing_stop") {
      if (frame.type === "typing_start") thread.typers.add(frame.userId); else thread.typers.delete(frame.userId);
      $("[data-desk-typing]").textContent = thread.typers.size ? t("The donor is typing…") : "";
    } else if (frame.type === "read_receipt") {
      var current = state.conversations[state.current];
      if (current && frame.userId === current.createdBy) { thread.donorRead = frame.messageId; renderReceipt(); }
    } else if (frame.type === "error") {
      if (SEND_ERRORS.indexOf(frame.code) >= 0 && thread.pending.length) failPending(thread.pending[0], frame.message);
      else showError(frame.message);
    }
  }

  function refreshCurrent() {
    var id = state.current;
    api("GET", "conversations/" + encodeURIComponent(id)).then(function (conversation) {
      if (state.current === id) upsert(conversation);
    }).catch(function () {});
  }

  // ---- messages: rendering, and changes to the ones shown (README, "Edits, deletions, reactions, replies")
  var EDIT_WINDOW_MS = (config.editWindowS || 0) * 1000;
  var REPLY_PREVIEW_LENGTH = 140; // as the server cuts a quoted message
  var ICONS = {
    react: ["M12 3a9 9 0 1 0 9 9", "M8.5 14.5s1.3 1.5 3.5 1.5 3.5-1.5 3.5-1.5", "M9 9.5h.01", "M15 9.5h.01", "M19 2v6", "M16 5h6"],
    reply: ["M9 17l-5-5 5-5", "M4 12h11a5 5 0 0 1 5 5v2"],
    edit: ["M12 20h9", "M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z"],
    "delete": ["M3 6h18", "M8 6V4h8v2", "M19 6l-1 14H6L5 6", "M10 11v6", "M14 11v6"],
  };
  function icon(name) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "desk-icon");
    ICONS[name].forEach(function (d) {
      var path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }
  // A button inside a message. Out of the Tab order until focus is in its message (setActive), so Tab
  // does not walk through every message on its way to the reply box. `key` finds it again after a rebuild.
  function itemButton(className, label, key, content) {
    var button = el("button", className);
    button.type = "button";
    button.tabIndex = -1;
    button.dataset.focusKey = key;
    if (label) { button.setAttribute("aria-label", label); button.title = label; }
    if (content) button.appendChild(content);
    return button;
  }
  function previewOf(content) {
    var text = String(content || "").split(/\s+/).filter(Boolean).join(" ");
    return text.length > REPLY_PREVIEW_LENGTH ? text.slice(0, REPLY_PREVIEW_LENGTH - 1) + "…" : text;
  }
  // Who reacted, by name where the desk knows them (staff), by id otherwise (the donor).
  function personName(userId) {
    if (userId === config.userId) return t("you");
    var agent = state.agents.find(function (a) { return a.agentId === userId; });
    return agent ? agent.displayName : userId;
  }
  function isOwn(m) { return m.senderId === config.userId && m.messageType !== "SYSTEM"; }
  // Editable: the agent's own reply or note, not deleted, while the server's window is open.
  function editableFor(m) {
    if (!isOwn(m) || m.deletedAt || m.editRefused || (m.messageType !== "TEXT" && m.messageType !== "NOTE")) return 0;
    return Math.max(0, new Date(m.createdAt).getTime() + EDIT_WINDOW_MS - Date.now());
  }

  function quoteOf(reply) {
    var quote = el("div", "desk-quote");
    quote.appendChild(el("span", "desk-quote-sender", reply.senderName || ""));
    if (reply.deletedAt) quote.appendChild(el("span", "desk-quote-text desk-quote-deleted", t("Deleted message")));
    else quote.appendChild(el("span", "desk-quote-text", reply.preview));
    return quote;
  }

  function reactionChips(m) {
    var row = el("div", "desk-reactions");
    (m.reactions || []).forEach(function (reaction) {
      var mine = (reaction.userIds || []).indexOf(config.userId) >= 0;
      var chip = itemButton("desk-reaction", null, "reaction:" + reaction.emoji);
      chip.appendChild(el("span", null, reaction.emoji));
      chip.appendChild(el("span", "desk-reaction-count", number(reaction.count)));
      chip.setAttribute("aria-pressed", String(mine));
      chip.title = (reaction.userIds || []).map(personName).join(", ");
      chip.addEventListener("click", function () { react(m.messageId, reaction.emoji, !mine); });
      row.appendChild(chip);
    });
    return row;
  }

  function actionBar(m) {
    var bar = el("div", "desk-actions");
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", t("Message actions"));
    var reactButton = itemButton("desk-action", t("Add a reaction"), "react", icon("react"));
    reactButton.setAttribute("aria-expanded", "false");
    reactButton.addEventListener("click", function () { togglePicker(m.messageId); });
    bar.appendChild(reactButton);
    // A reply the donor sees cannot quote a note (the server refuses it): a note is answered with a note.
    var note = m.messageType === "NOTE";
    var reply = itemButton("desk-action", note ? t("Reply with a note") : t("Reply"), note ? "reply-note" : "reply", icon("reply"));
    reply.addEventListener("click", function () { startReply(m.messageId); });
    bar.appendChild(reply);
    if (editableFor(m) > 0) {
      var edit = itemButton("desk-action", t("Edit"), "edit", icon("edit"));
      edit.addEventListener("click", function () { startEdit(m.messageId); });
      bar.appendChild(edit);
    }
    var remove = itemButton("desk-action desk-action-danger", t("Delete"), "delete", icon("delete"));
    remove.addEventListener("click", function () { deleteMessage(m.messageId); });
    bar.appendChild(remove);
    return bar;
  }

  function buildItem(m) {
    var kind = m.messageType === "SYSTEM" ? "SYSTEM" : m.messageType === "NOTE" ? "NOTE" : m.senderRole;
    var deleted = Boolean(m.deletedAt);
    var item = el("li", "desk-msg desk-msg-" + kind + (deleted ? " desk-msg-deleted" : ""));
    item.dataset.messageId = m.messageId;
    item.dataset.senderRole = m.senderRole;
    item.dataset.type = m.messageType;
    if (kind !== "SYSTEM") {
      var meta = el("span", "desk-msg-meta");
      if (kind === "NOTE") meta.appendChild(el("span", "desk-msg-note-tag", t("Internal note")));
      meta.appendChild(el("b", null, m.senderName || m.senderId));
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(timeEl(m.createdAt, when(m.createdAt)));
      if (m.editedAt && !deleted) {
        // Staff may read what it said before: the marker opens the earlier versions.
        meta.appendChild(document.createTextNode(" · "));
        var edited = itemButton("desk-edited", null, "versions");
        edited.textContent = t("edited");
        edited.title = fmt("Edited %(when)s. Show earlier versions.", { when: full(m.editedAt) });
        edited.addEventListener("click", function () { openVersions(m.messageId); });
        meta.appendChild(edited);
      }
      item.appendChild(meta);
    }
    if (deleted) {
      item.appendChild(el("span", "desk-msg-body desk-tombstone", t("This message was deleted")));
      return item; // nothing of what it said, and nothing left to do with it
    }
    if (m.replyTo) item.appendChild(quoteOf(m.replyTo));
    var body = el("span", "desk-msg-body", m.content);
    if (m.messageType === "FILE" && m.metadata && (m.metadata.attachmentId || m.metadata.url)) {
      body.textContent = "";
      body.appendChild(fileView(m.metadata));
      if (m.content && m.content !== m.metadata.name) body.appendChild(el("span", "desk-file-caption", m.content));
    }
    item.appendChild(body);
    var redacted = (m.metadata && Array.isArray(m.metadata.redacted)) ? m.metadata.redacted : [];
    if (redacted.length) {
      // Why the text reads "**** 1111": the server masked it before storing it; the original is nowhere.
      item.appendChild(el("span", "desk-redacted", redacted.indexOf("iban") >= 0 && redacted.indexOf("card") < 0
        ? t("Account number hidden before storage") : t("Card number hidden before storage")));
    }
    if (kind !== "SYSTEM") {
      if ((m.reactions || []).length) item.appendChild(reactionChips(m));
      item.appendChild(actionBar(m));
      item.classList.add("desk-actionable");
      item.tabIndex = -1; // reached with the arrow keys (the list's keydown)
      scheduleEditExpiry(item, m);
    }
    return item;
  }

  // The Edit button goes when the window closes (the server would refuse it from then on).
  function scheduleEditExpiry(item, m) {
    var left = editableFor(m);
    if (!left) return;
    setTimeout(function () {
      var edit = item.querySelector("[data-focus-key=edit]");
      if (!item.isConnected || !edit) return;
      if (document.activeElement === edit) item.focus();
      edit.remove();
    }, left + 250);
  }

  function addMessage(m) {
    if (thread.messages.has(m.messageId)) return;
    var node = buildItem(m);
    thread.messages.set(m.messageId, { data: m, node: node });
    messages.appendChild(node);
  }

  function noteCursor(value) {
    var cursor = Number(value);
    if (Number.isSafeInteger(cursor) && (thread.changeCursor === null || cursor > thread.changeCursor)) thread.changeCursor = cursor;
  }

  // Builds a shown message again from its (new) data, keeping the keyboard's place and the "seen" line.
  function rebuild(entry) {
    if (entry.editing) { entry.stale = true; return; } // rebuilt when the edit ends: the agent's typing stays
    var old = entry.node;
    var focused = old.contains(document.activeElement) ? document.activeElement : null;
    var key = focused && focused.dataset.focusKey;
    if (thread.picker === old) thread.picker = null;
    if (thread.active === old) thread.active = null;
    var fresh = buildItem(entry.data);
    old.replaceWith(fresh);
    entry.node = fresh;
    if (old.querySelector(".desk-receipt")) renderReceipt();
    if (focused) {
      var same = key ? fresh.querySelector('[data-focus-key="' + CSS.escape(key) + '"]') : null;
      (same || (fresh.hasAttribute("tabindex") ? fresh : messages)).focus();
    }
  }

  // Replies show the message they quote as it is now.
  function refreshQuotes(messageId, change) {
    thread.messages.forEach(function (entry) {
      if (entry.data.replyTo && entry.data.replyTo.messageId === messageId) {
        entry.data = Object.assign({}, entry.data, { replyTo: Object.assign({}, entry.data.replyTo, change) });
        rebuild(entry);
      }
    });
    if (thread.replyTo && thread.replyTo.messageId === messageId) showReplying(Object.assign({}, thread.replyTo, change));
  }

  function applyMessage(message) {
    var entry = thread.messages.get(message.messageId);
    if (!entry) return; // not shown: ignored
    var before = entry.data;
    entry.data = Object.assign({}, before, message);
    rebuild(entry);
    if (message.deletedAt && !before.deletedAt) refreshQuotes(message.messageId, { preview: "", deletedAt: message.deletedAt });
    else if (message.content !== before.content) refreshQuotes(message.messageId, { preview: previewOf(message.content) });
  }

  function applyDeleted(messageId, deletedAt) {
    var entry = thread.messages.get(messageId);
    if (!entry || entry.data.deletedAt) return;
    entry.editing = false;
    entry.data = Object.assign({}, entry.data, { content: "", metadata: {}, reactions: [], deletedAt: deletedAt });
    rebuild(entry);
    refreshQuotes(messageId, { preview: "", deletedAt: deletedAt });
  }

  function applyReactions(messageId, reactions) {
    var entry = thread.messages.get(messageId);
    if (!entry || entry.data.deletedAt) return;
    entry.data = Object.assign({}, entry.data, { reactions: reactions });
    rebuild(entry);
  }

  function messagePath(messageId, suffix) {
    return "conversations/" + encodeURIComponent(state.current) + "/messages/" + encodeURIComponent(messageId) + (suffix || "");
  }

  function react(messageId, emoji, on) {
    closePicker();
    api(on ? "PUT" : "DELETE", messagePath(messageId, "/reactions/" + encodeURIComponent(emoji)))
      .then(function (message) { showError(""); applyMessage(message); })
      .catch(function (error) { showError(fmt("Your reaction was not saved: %(reason)s", { reason: problem(error) })); });
  }

  // ---- the reaction picker: one row of the allowed reactions, inside the message ------------------------
  function togglePicker(messageId) {
    var entry = thread.messages.get(messageId);
    if (!entry) return;
    if (thread.picker === entry.node) return closePicker(true);
    closePicker();
    var item = entry.node;
    var picker = el("div", "desk-picker");
    picker.setAttribute("role", "group");
    picker.setAttribute("aria-label", t("Reactions"));
    var mine = (entry.data.reactions || []).filter(function (r) { return (r.userIds || []).indexOf(config.userId) >= 0; })
      .map(function (r) { return r.emoji; });
    (config.reactions || []).forEach(function (emoji) {
      var on = mine.indexOf(emoji) < 0;
      var choice = itemButton("desk-pick", null, "pick:" + emoji);
      choice.textContent = emoji;
      choice.tabIndex = 0; // open because focus is here: in the Tab order while it is open
      choice.setAttribute("aria-pressed", String(!on));
      choice.addEventListener("click", function () { react(messageId, emoji, on); });
      picker.appendChild(choice);
    });
    picker.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.stopPropagation(); closePicker(true); }
    });
    item.querySelector(".desk-actions").after(picker);
    item.querySelector("[data-focus-key=react]").setAttribute("aria-expanded", "true");
    item.classList.add("desk-picking");
    thread.picker = item;
    picker.firstElementChild.focus();
    picker.scrollIntoView({ block: "nearest" });
  }

  function closePicker(focus) {
    var item = thread.picker;
    if (!item) return;
    thread.picker = null;
    item.classList.remove("desk-picking");
    var picker = item.querySelector(".desk-picker");
    var hadFocus = picker && picker.contains(document.activeElement);
    if (picker) picker.remove();
    var button = item.querySelector("[data-focus-key=react]");
    if (button) {
      button.setAttribute("aria-expanded", "false");
      if (focus || hadFocus) button.focus();
    }
  }
  document.addEventListener("click", function (event) {
    if (thread.picker && !thread.picker.contains(event.target)) closePicker();
  });

  // ---- replying ------------------------------------------------------------------------------------------
  var replying = $("[data-desk-replying]");
  function showReplying(reply) {
    thread.replyTo = reply;
    $("[data-desk-replying-label]").textContent = fmt("Replying to %(name)s:", { name: reply.senderName || "" });
    $("[data-desk-replying-preview]").textContent = reply.deletedAt ? t("Deleted message") : reply.preview;
    replying.hidden = false;
    replying.classList.toggle("note", reply.messageType === "NOTE");
  }
  function startReply(messageId) {
    var entry = thread.messages.get(messageId);
    if (!entry || replyForm.hidden) return;
    var m = entry.data;
    if (m.messageType === "NOTE" && mode() !== "NOTE") {
      // Quoting a note: the answer is a note too (only staff may see what it quotes).
      $("[data-desk-mode][value=NOTE]").checked = true;
      applyMode();
    }
    showReplying({ messageId: messageId, senderName: m.senderName || m.senderId, messageType: m.messageType, preview: previewOf(m.content), deletedAt: m.deletedAt || null });
    input.focus();
  }
  function cancelReply(focus) {
    thread.replyTo = null;
    replying.hidden = true;
    if (focus) input.focus();
  }
  $("[data-desk-reply-cancel]").addEventListener("click", function () { cancelReply(true); });

  // ---- editing the agent's own reply or note, in place ---------------------------------------------------
  function startEdit(messageId) {
    var entry = thread.messages.get(messageId);
    if (!entry || entry.editing || !editableFor(entry.data)) return;
    closePicker();
    var item = entry.node;
    var form = el("form", "desk-edit");
    var box = el("textarea");
    box.rows = 3;
    box.value = entry.data.content;
    box.setAttribute("aria-label", entry.data.messageType === "NOTE" ? t("Edit your note") : t("Edit your reply"));
    var cancel = el("button", "button", t("Cancel"));
    cancel.type = "button";
    var save = el("button", "button default", t("Save"));
    save.type = "submit";
    var buttons = el("div", "desk-edit-buttons");
    buttons.appendChild(cancel);
    buttons.appendChild(save);
    form.appendChild(box);
    form.appendChild(buttons);
    var body = item.querySelector(".desk-msg-body");
    body.hidden = true;
    body.after(form);
    item.classList.add("desk-editing");
    entry.editing = true;
    function finish() {
      entry.editing = false;
      form.remove();
      body.hidden = false;
      item.classList.remove("desk-editing");
      if (entry.stale) { entry.stale = false; rebuild(entry); }
      var again = entry.node.querySelector("[data-focus-key=edit]");
      (again || entry.node).focus();
    }
    cancel.addEventListener("click", finish);
    box.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { event.stopPropagation(); finish(); }
      else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = box.value;
      if (text === entry.data.content) return finish();
      if (!text.trim()) return showError(t("A message cannot be empty. To remove it, delete it instead."));
      save.disabled = true;
      api("PATCH", messagePath(messageId), { content: text }).then(function (message) {
        showError("");
        entry.data = Object.assign({}, entry.data, message);
        entry.stale = true;
        finish();
        refreshQuotes(messageId, { preview: previewOf(message.content) });
      }).catch(function (error) {
        save.disabled = false;
        var code = error && error.body && error.body.code;
        if (code === "edit_window_passed") {
          showError(fmt("This message can no longer be changed: messages can be edited for %(minutes)s minutes after sending.", { minutes: number(Math.round(EDIT_WINDOW_MS / 60000)) }));
          entry.data = Object.assign({}, entry.data, { editRefused: true });
          entry.stale = true;
          finish();
        } else {
          showError(fmt("Your change was not saved: %(reason)s", { reason: problem(error) }));
        }
      });
    });
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // ---- deleting any message (staff); recorded in the audit log by the server -----------------------------
  var confirmDialog = document.querySelector("[data-desk-confirm]");
  function deleteMessage(messageId) {
    var entry = thread.messages.get(messageId);
    if (!entry) return;
    closePicker();
    var note = entry.data.messageType === "NOTE";
    $all("[data-desk-confirm-for]", confirmDialog).forEach(function (line) {
      line.hidden = (line.dataset.deskConfirmFor === "note") !== note;
    });
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener("close", function () {
      if (confirmDialog.returnValue !== "delete") return;
      api("DELETE", messagePath(messageId)).then(function () {
        showError("");
        applyDeleted(messageId, new Date().toISOString()); // the message_deleted frame brings the server's time
      }).catch(function (error) { showError(fmt("The message was not deleted: %(reason)s", { reason: problem(error) })); });
    }, { once: true });
    confirmDialog.showModal();
  }

  // ---- earlier versions of an edited message -------------------------------------------------------------
  var versionsDialog = document.querySelector("[data-desk-versions]");
  function openVersions(messageId) {
    var entry = thread.messages.get(messageId);
    if (!entry) return;
    var list = $("[data-desk-versions-list]", versionsDialog);
    var now = $("[data-desk-versions-now]", versionsDialog);
    list.textContent = "";
    now.textContent = fmt("Now: %(text)s", { text: entry.data.content });
    versionsDialog.showModal();
    api("GET", messagePath(messageId, "/versions")).then(function (answer) {
      if (!answer.results.length) list.appendChild(el("li", null, t("No earlier versions.")));
      answer.results.forEach(function (version) {
        var item = el("li", "desk-version");
        item.appendChild(el("span", "desk-version-meta", fmt("Written %(written)s, replaced by %(name)s %(replaced)s", {
          written: full(version.writtenAt), name: personName(version.replacedById), replaced: full(version.replacedAt),
        })));
        item.appendChild(el("span", "desk-version-text", version.content));
        list.appendChild(item);
      });
    }).catch(function (error) { list.appendChild(el("li", "desk-version-error", problem(error))); });
  }

  // ---- moving between messages with the keyboard --------------------------------------------------------
  // Only the message focus is in has its buttons in the Tab order: the list stays one Tab stop.
  function setActive(item) {
    if (thread.active === item) return;
    if (thread.active) {
      thread.active.classList.remove("desk-active");
      $all(".desk-actions button, .desk-reactions button", thread.active).forEach(function (b) { b.tabIndex = -1; });
    }
    thread.active = item;
    if (item) {
      item.classList.add("desk-active");
      $all(".desk-actions button, .desk-reactions button", item).forEach(function (b) { b.tabIndex = 0; });
    }
  }
  messages.addEventListener("focusin", function (event) {
    var item = event.target.closest("li.desk-actionable");
    setActive(item && messages.contains(item) ? item : null);
  });
  messages.addEventListener("focusout", function (event) {
    if (!messages.contains(event.relatedTarget)) setActive(null);
  });
  messages.addEventListener("keydown", function (event) {
    if (["ArrowUp", "ArrowDown", "Home", "End"].indexOf(event.key) < 0 || event.target.closest("textarea, input")) return;
    var items = $all("li.desk-actionable", messages);
    if (!items.length) return;
    var current = event.target.closest("li.desk-actionable");
    var index = current ? items.indexOf(current) : -1;
    if (event.key === "Home") index = 0;
    else if (event.key === "End" || index < 0) index = items.length - 1;
    else if (event.key === "ArrowUp") index = Math.max(0, index - 1);
    else index = Math.min(items.length - 1, index + 1);
    event.preventDefault();
    items[index].focus();
    items[index].scrollIntoView({ block: "nearest" });
  });

  // ---- attachments --------------------------------------------------------------------------------------
  var IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"];
  function formatSize(bytes) {
    var unit = bytes >= 1048576 ? ["megabyte", 1048576] : bytes >= 1024 ? ["kilobyte", 1024] : ["byte", 1];
    var display = unit[0] === "byte" ? "long" : "short"; // "48 bytes": CLDR's short form is "48 byte"
    return new Intl.NumberFormat(LOCALE, { style: "unit", unit: unit[0], unitDisplay: display, maximumFractionDigits: 1 }).format(bytes / unit[1]);
  }
  // An upload through this service (staff fetch it with their session), or a file hosted elsewhere.
  function fileView(meta) {
    var name = String(meta.name || t("file"));
    var link = el("a", "desk-file");
    if (!meta.attachmentId) {
      link.href = String(meta.url);
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.appendChild(el("span", "desk-file-name", name));
      return link;
    }
    var path = config.api + "attachments/" + encodeURIComponent(meta.attachmentId);
    link.href = path;
    if (IMAGE_TYPES.indexOf(meta.contentType) >= 0 && meta.thumbnailUrl) {
      link.className = "desk-file-image";
      link.target = "_blank";
      link.rel = "noopener";
      var img = el("img");
      img.alt = name;
      img.src = path + "?variant=thumbnail";
      if (meta.width && meta.height) {
        var scale = Math.min(1, 200 / Math.max(meta.width, meta.height));
        img.width = Math.round(meta.width * scale);
        img.height = Math.round(meta.height * scale);
      }
      link.appendChild(img);
      return link;
    }
    link.download = name;
    link.appendChild(el("span", "desk-file-name", name));
    if (typeof meta.size === "number") link.appendChild(el("span", "desk-file-size", formatSize(meta.size)));
    return link;
  }

  var attachButton = $("[data-desk-attach]");
  var fileInput = $("[data-desk-file]");
  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var files = Array.prototype.slice.call(fileInput.files);
    fileInput.value = "";
    files.forEach(uploadFile);
  });
  // Files dropped on the open conversation are attached like the paperclip's (replies only, never notes).
  var threadPane = $("[data-desk-thread]");
  function canDrop(event) {
    return state.current && mode() !== "NOTE" && !replyForm.hidden && event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
  }
  threadPane.addEventListener("dragover", function (event) {
    if (!canDrop(event)) return;
    event.preventDefault();
    threadPane.classList.add("desk-dropping");
  });
  threadPane.addEventListener("dragleave", function (event) {
    if (!threadPane.contains(event.relatedTarget)) threadPane.classList.remove("desk-dropping");
  });
  threadPane.addEventListener("drop", function (event) {
    threadPane.classList.remove("desk-dropping");
    if (!canDrop(event) || !event.dataTransfer.files.length) return;
    event.preventDefault();
    Array.prototype.slice.call(event.dataTransfer.files).forEach(uploadFile);
  });

  function uploadFile(file) {
    if (!state.current) return;
    var conversation = state.current;
    var node = el("li", "desk-msg desk-msg-ADMIN");
    node.appendChild(el("span", "desk-msg-meta", fmt("Uploading %(name)s…", { name: file.name })));
    var bar = el("progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", fmt("Uploading %(name)s", { name: file.name }));
    node.appendChild(bar);
    messages.appendChild(node);
    scrollToEnd();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", config.api + "conversations/" + encodeURIComponent(conversation) + "/attachments");
    xhr.setRequestHeader("X-CSRFToken", config.csrfToken);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (event) { if (event.lengthComputable) bar.value = event.loaded / event.total; });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
      if (xhr.status !== 201) {
        node.remove();
        showError(fmt("“%(name)s” was not sent: %(reason)s", { name: file.name, reason: (body && body.detail) || "HTTP " + xhr.status }));
        return;
      }
      if (state.current !== conversation) { node.remove(); return; }
      var key = newKey();
      var pending = { key: key, content: body.name, messageType: "FILE", metadata: { attachmentId: body.attachmentId }, node: node };
      node.replaceChildren(el("span", "desk-msg-meta", t("Sending…")), el("span", "desk-msg-body", body.name));
      thread.pending.push(pending);
      send(pending.content, "FILE", key, pending.metadata);
    });
    xhr.addEventListener("error", function () { node.remove(); showError(fmt("“%(name)s” was not sent: %(reason)s", { name: file.name, reason: t("the connection failed.") })); });
    var form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  }

  function renderReceipt() {
    $all(".desk-receipt", messages).forEach(function (node) { node.remove(); });
    if (!thread.donorRead) return;
    var items = $all("li[data-message-id]", messages);
    var upto = items.findIndex(function (item) { return item.dataset.messageId === thread.donorRead; });
    for (var i = upto; i >= 0; i -= 1) {
      // "Seen" goes under the latest staff reply the donor has read, never under the donor's own message.
      if (items[i].dataset.senderRole === "ADMIN" && items[i].dataset.type !== "SYSTEM" && items[i].dataset.type !== "NOTE") {
        items[i].appendChild(el("span", "desk-receipt", t("Seen by the donor")));
        return;
      }
    }
  }

  function scrollToEnd() { messages.scrollTop = messages.scrollHeight; }

  function markRead() {
    if (document.hidden || !thread.socket || thread.socket.readyState !== WebSocket.OPEN) return;
    thread.socket.send(JSON.stringify({ type: "read" }));
    var c = state.conversations[state.current];
    if (c && c.unreadCount) { c.unreadCount = 0; renderList(); }
  }

  function renderConversation(c) {
    $("[data-desk-subject]").textContent = title(c);
    var badge = $("[data-desk-status-badge]");
    badge.textContent = c.status === "ACTIVE" ? t("Open") : c.status === "CLOSED" ? t("Closed") : t("Archived");
    badge.className = "desk-badge " + c.status;
    var names = assignees(c).map(function (p) { return p.displayName; });
    $("[data-desk-assignees]").textContent = "· " + (names.length ? names.join(", ") : t("Unassigned"));
    $("[data-desk-assignees]").title = names.length ? t("Assigned") : "";
    var mine = isMine(c);
    var open = c.status === "ACTIVE";
    $("[data-desk-action=assign]").hidden = mine || !open;
    $("[data-desk-action=unassign]").hidden = !mine;
    $("[data-desk-action=close]").hidden = !open;
    $("[data-desk-closed] [data-desk-action=reopen]").hidden = c.status !== "CLOSED";
    $("[data-desk-closed] span").textContent = c.status === "ARCHIVED" ? t("This conversation is archived (read-only).") : t("This conversation is closed.");
    $all(".desk-toolbar .desk-inline").forEach(function (label) { label.hidden = !open; });
    $("[data-desk-priority]").value = c.priority || "NORMAL";
    $("[data-desk-closed]").hidden = open;
    replyForm.hidden = !open;
    // Without a reply box there is nothing to reply with; an archived conversation keeps only Delete, so
    // staff can still remove what must not stay (workspace.css).
    messages.dataset.status = c.status;
    var labels = $("[data-desk-labels]");
    labels.textContent = "";
    (c.labels || []).forEach(function (label) {
      var tag = el("span", "desk-label", label);
      var remove = el("button", null, "×");
      remove.type = "button";
      remove.setAttribute("aria-label", fmt("Remove label %(label)s", { label: label }));
      remove.addEventListener("click", function () {
        update({ labels: (c.labels || []).filter(function (other) { return other !== label; }) });
      });
      tag.appendChild(remove);
      labels.appendChild(tag);
    });
    renderClocks(c);
  }

  function renderContext(c) {
    $("[data-desk-context-body]").hidden = false;
    $("[data-desk-donor]").textContent = c.createdBy;
    var meta = $("[data-desk-meta]");
    meta.textContent = "";
    var entries = Object.keys(c.metadata || {});
    if (!entries.length) {
      // A definition list holds term and definition pairs only: the term is there for screen readers.
      var empty = el("div");
      empty.appendChild(el("dt", "visually-hidden", t("Details")));
      empty.appendChild(el("dd", null, t("No details")));
      meta.appendChild(empty);
    }
    entries.forEach(function (key) {
      meta.appendChild(el("dt", null, key));
      var value = c.metadata[key];
      meta.appendChild(el("dd", null, typeof value === "string" ? value : JSON.stringify(value)));
    });
    var others = $("[data-desk-others]");
    others.textContent = "";
    api("GET", "conversations?limit=20&q=" + encodeURIComponent(c.createdBy)).then(function (page) {
      var list = page.results.filter(function (o) { return o.conversationId !== c.conversationId && o.createdBy === c.createdBy; });
      if (!list.length) others.appendChild(el("li", null, t("None")));
      list.forEach(function (o) {
        var item = el("li");
        var link = el("a", null, title(o) + " · " + o.status.toLowerCase());
        link.href = "?c=" + encodeURIComponent(o.conversationId);
        link.addEventListener("click", function (event) { event.preventDefault(); openConversation(o.conversationId); });
        item.appendChild(link);
        others.appendChild(item);
      });
    }).catch(function () {});
  }

  var shownRating = null; // the open conversation's rating last shown: a new one moves the team averages
  function renderClocks(c) {
    var rating = c.csat ? c.csat.submittedAt : null;
    if (rating && shownRating !== null && rating !== shownRating) loadAgents();
    shownRating = rating || "";
    var clocks = $("[data-desk-clocks]");
    clocks.textContent = "";
    [[t("Opened"), when(c.createdAt)], [t("First response"), c.firstResponseAt ? when(c.firstResponseAt) : t("Not yet")],
     [t("Waiting"), c.waitingSince ? fmt("for %(time)s", { time: since(c.waitingSince) }) : t("No")], [t("Snoozed until"), c.snoozedUntil ? when(c.snoozedUntil) : "—"],
     // The donor's latest rating (README, "Satisfaction survey"); their comment as text, never markup.
     [t("Rating"), c.csat ? fmt("%(rating)s / 5", { rating: number(c.csat.rating) }) + (c.csat.comment ? " · “" + c.csat.comment + "”" : "") : "—"]]
      .forEach(function (pair) { clocks.appendChild(el("dt", null, pair[0])); clocks.appendChild(el("dd", null, pair[1])); });
  }

  function update(body) {
    var id = state.current;
    return api("PUT", "conversations/" + encodeURIComponent(id), body)
      .then(function (conversation) { showError(""); upsert(conversation); })
      .catch(function (error) { showError(problem(error)); });
  }
  function act(path, body) {
    var id = state.current;
    return api("POST", "conversations/" + encodeURIComponent(id) + "/" + path, body || {})
      .then(function (conversation) { showError(""); upsert(conversation); loadAgents(); })
      .catch(function (error) { showError(problem(error)); });
  }

  $all("[data-desk-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var action = button.dataset.deskAction;
      if (action === "assign") act("assign");
      else if (action === "unassign") act("unassign");
      else if (action === "close") update({ status: "CLOSED" });
      else if (action === "reopen") update({ status: "ACTIVE" });
    });
  });
  $("[data-desk-transfer]").addEventListener("change", function (event) {
    var target = event.target.value;
    if (target) act("transfer", { adminId: target }).then(function () { event.target.value = ""; });
  });
  $("[data-desk-priority]").addEventListener("change", function (event) { update({ priority: event.target.value }); });
  $("[data-desk-snooze]").addEventListener("change", function (event) {
    var choice = event.target.value;
    event.target.value = "";
    if (!choice) return;
    var until = null;
    var now = new Date();
    if (choice === "1h") until = new Date(now.getTime() + 3600000);
    if (choice === "tomorrow") { until = new Date(now); until.setDate(now.getDate() + 1); until.setHours(9, 0, 0, 0); }
    if (choice === "week") { until = new Date(now); until.setDate(now.getDate() + ((8 - now.getDay()) % 7 || 7)); until.setHours(9, 0, 0, 0); }
    update({ snoozedUntil: until ? until.toISOString() : null });
  });
  $("[data-desk-label-form]").addEventListener("submit", function (event) {
    event.preventDefault();
    var field = $("[data-desk-label-input]");
    var label = field.value.trim().toLowerCase();
    var c = state.conversations[state.current];
    if (!label || !c) return;
    update({ labels: (c.labels || []).concat([label]) }).then(function () { field.value = ""; });
  });
  $("[data-desk-back]").addEventListener("click", function () { root.dataset.pane = "list"; });

  // ---- sending ---------------------------------------------------------------------------------------
  function mode() { return $("[data-desk-mode]:checked").value; }
  function applyMode() {
    replyForm.classList.toggle("note", mode() === "NOTE");
    attachButton.hidden = mode() === "NOTE"; // a file is a reply to the donor, never a note
    input.placeholder = mode() === "NOTE" ? t("An internal note: only staff see it.") : t("Reply to the donor. Enter sends, Shift+Enter a new line, / for canned responses.");
    // The donor sees a reply, and it cannot quote a note: switching to Reply drops such a quote.
    if (mode() !== "NOTE" && thread.replyTo && thread.replyTo.messageType === "NOTE") cancelReply();
  }
  $all("[data-desk-mode]").forEach(function (radio) { radio.addEventListener("change", applyMode); });

  function newKey() { return "desk-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10); }

  function send(content, messageType, key, metadata, replyTo) {
    var frame = { type: "message", content: content, messageType: messageType, clientMessageId: key };
    if (metadata) frame.metadata = metadata;
    if (replyTo) frame.replyTo = replyTo.messageId;
    if (thread.socket && thread.socket.readyState === WebSocket.OPEN) {
      thread.socket.send(JSON.stringify(frame));
      return;
    }
    // REST fallback while the socket is down: the same idempotency key, so a retry never doubles it.
    var body = { content: content, messageType: messageType, clientMessageId: key };
    if (metadata) body.metadata = metadata;
    if (replyTo) body.replyTo = replyTo.messageId;
    api("POST", "conversations/" + encodeURIComponent(state.current) + "/messages", body)
      .then(function (message) { settlePending(message); addMessage(message); scrollToEnd(); })
      .catch(function (error) { var p = thread.pending.find(function (x) { return x.key === key; }); if (p) failPending(p, problem(error)); });
  }

  replyForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var content = input.value;
    if (!content.trim()) return;
    var key = newKey();
    var replyTo = thread.replyTo;
    var pending = { key: key, content: content, messageType: mode(), replyTo: replyTo, node: el("li", "desk-msg desk-msg-" + (mode() === "NOTE" ? "NOTE" : "ADMIN")) };
    pending.node.appendChild(el("span", "desk-msg-meta", t("Sending…")));
    if (replyTo) pending.node.appendChild(quoteOf(replyTo));
    pending.node.appendChild(el("span", "desk-msg-body", content));
    cancelReply();
    messages.appendChild(pending.node);
    thread.pending.push(pending);
    // The box is cleared once, here: a refused send stays in the thread with "Retry", it never comes back.
    input.value = "";
    hideCanned();
    stopTyping();
    scrollToEnd();
    send(content, pending.messageType, key, null, replyTo);
  });

  function settlePending(message) {
    var index = thread.pending.findIndex(function (p) { return p.key === message.clientMessageId; });
    if (index < 0) return;
    thread.pending[index].node.remove();
    thread.pending.splice(index, 1);
  }

  function failPending(pending, reason) {
    thread.pending.splice(thread.pending.indexOf(pending), 1);
    pending.node.classList.add("desk-msg-failed");
    var line = el("span", "desk-msg-retry", fmt("Not sent: %(reason)s", { reason: reason }));
    var retry = el("button", "button", t("Retry"));
    retry.type = "button";
    retry.addEventListener("click", function () {
      line.remove();
      pending.node.classList.remove("desk-msg-failed");
      thread.pending.push(pending);
      send(pending.content, pending.messageType, pending.key, pending.metadata, pending.replyTo);
    });
    line.appendChild(retry);
    pending.node.appendChild(line);
  }

  input.addEventListener("keydown", function (event) {
    if (cannedOpen() && ["ArrowDown", "ArrowUp", "Enter", "Tab", "Escape"].indexOf(event.key) >= 0) {
      event.preventDefault();
      return moveCanned(event.key);
    }
    if (event.key === "Escape" && thread.replyTo) return cancelReply();
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      replyForm.requestSubmit();
    }
  });
  input.addEventListener("input", function () {
    showCanned();
    if (mode() === "NOTE") return; // notes are not announced as typing to the donor
    var now = Date.now();
    if (now - thread.typingSentAt > TYPING_REFRESH_MS && thread.socket && thread.socket.readyState === WebSocket.OPEN) {
      thread.socket.send(JSON.stringify({ type: "typing", isTyping: true }));
      thread.typingSentAt = now;
    }
    clearTimeout(thread.typingTimer);
    thread.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  });
  function stopTyping() {
    clearTimeout(thread.typingTimer);
    if (thread.typingSentAt && thread.socket && thread.socket.readyState === WebSocket.OPEN) {
      thread.socket.send(JSON.stringify({ type: "typing", isTyping: false }));
    }
    thread.typingSentAt = 0;
  }

  // ---- canned responses ("/" + short code) ----------------------------------------------------------
  var cannedList = $("[data-desk-canned]");
  var cannedIndex = 0;
  function loadCanned() { api("GET", "canned-responses").then(function (list) { state.canned = list; }).catch(function () {}); }
  function cannedMatches() {
    var value = input.value;
    if (value.charAt(0) !== "/" || /\s/.test(value)) return [];
    var code = value.slice(1).toLowerCase();
    return state.canned.filter(function (c) { return c.shortCode.toLowerCase().indexOf(code) === 0; });
  }
  function cannedOpen() { return !cannedList.hidden; }
  function hideCanned() { cannedList.hidden = true; cannedList.textContent = ""; }
  function showCanned() {
    var found = cannedMatches();
    cannedList.textContent = "";
    if (!found.length) return hideCanned();
    cannedIndex = Math.min(cannedIndex, found.length - 1);
    found.forEach(function (c, index) {
      var option = el("li");
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", String(index === cannedIndex));
      option.appendChild(el("b", null, "/" + c.shortCode));
      option.appendChild(document.createTextNode(c.content.length > 80 ? c.content.slice(0, 79) + "…" : c.content));
      option.addEventListener("mousedown", function (event) { event.preventDefault(); insertCanned(c); });
      cannedList.appendChild(option);
    });
    cannedList.hidden = false;
  }
  function moveCanned(key) {
    var found = cannedMatches();
    if (key === "Escape") return hideCanned();
    if (key === "ArrowDown") cannedIndex = (cannedIndex + 1) % found.length;
    if (key === "ArrowUp") cannedIndex = (cannedIndex - 1 + found.length) % found.length;
    if (key === "Enter" || key === "Tab") return insertCanned(found[cannedIndex]);
    showCanned();
  }
  function insertCanned(canned) {
    input.value = canned.content;
    cannedIndex = 0;
    hideCanned();
    input.focus();
  }

  // ---- keyboard shortcuts -----------------------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT")) return;
    if (document.querySelector("dialog[open]")) return; // a dialog is in front: "e" must not close what is behind it
    var index = state.order.indexOf(state.current);
    if (event.key === "j" && state.order.length) openConversation(state.order[Math.min(index + 1, state.order.length - 1)]);
    else if (event.key === "k" && state.order.length) openConversation(state.order[Math.max(index - 1, 0)]);
    else if (event.key === "r" && state.current && !replyForm.hidden) { event.preventDefault(); input.focus(); }
    else if (event.key === "e" && state.current && state.conversations[state.current].status === "ACTIVE") update({ status: "CLOSED" });
  });

  // ---- start ---------------------------------------------------------------------------------------
  loadAgents();
  loadCanned();
  connectInbox();
  setInterval(function () { if (!document.hidden) loadList(); }, LIST_REFRESH_MS);
  if (config.initial) openConversation(config.initial);
})();
