// The agent workspace (plain JavaScript, no build step). Reads and writes through the REST API and the
// WebSockets like any client: the admin session authenticates them on this origin, and every write
// carries the CSRF token. Everything a person wrote goes into the page with textContent only.
//
// Order on (re)connect of the inbox socket: open the socket first, then reload the list over REST,
// then apply events on top, so nothing that happens in between is missed (README, "Inbox").
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
    "internal_error", "note_forbidden", "invalid_choice", "metadata_too_large", "not_a_string", "idempotency_key_reused"];

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
  var thread = { socket: null, seen: new Set(), pending: [], retry: 1000, typers: new Set(), typingSentAt: 0, typingTimer: null, donorRead: null, closedByUs: false };
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

  function openConversation(id) {
    if (thread.socket) { thread.closedByUs = true; thread.socket.close(); }
    state.current = id;
    root.dataset.pane = "thread";
    thread.seen = new Set();
    thread.pending = [];
    thread.typers = new Set();
    thread.donorRead = null;
    messages.textContent = "";
    showError("");
    $("[data-desk-placeholder]").hidden = true;
    $("[data-desk-conversation]").hidden = false;
    renderList();
    history.replaceState(null, "", "?c=" + encodeURIComponent(id));
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
      page.results.forEach(function (m) {
        if ((m.readBy || []).some(function (r) { return r.userId === donor; })) thread.donorRead = m.messageId;
      });
      renderReceipt();
      scrollToEnd();
      connectThread(id, page.results.length ? page.results[page.results.length - 1].messageId : null);
    }).catch(function (error) { showError(problem(error)); });
  }

  function connectThread(id, lastMessageId) {
    var path = config.conversationPath + encodeURIComponent(id) + (lastMessageId ? "?lastMessageId=" + encodeURIComponent(lastMessageId) : "");
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

  function addMessage(m) {
    if (thread.seen.has(m.messageId)) return;
    thread.seen.add(m.messageId);
    var kind = m.messageType === "SYSTEM" ? "SYSTEM" : m.messageType === "NOTE" ? "NOTE" : m.senderRole;
    var item = el("li", "desk-msg desk-msg-" + kind);
    item.dataset.messageId = m.messageId;
    item.dataset.senderRole = m.senderRole;
    item.dataset.type = m.messageType;
    if (kind !== "SYSTEM") {
      var meta = el("span", "desk-msg-meta");
      if (kind === "NOTE") meta.appendChild(el("span", "desk-msg-note-tag", t("Internal note")));
      meta.appendChild(el("b", null, m.senderName || m.senderId));
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(timeEl(m.createdAt, when(m.createdAt)));
      item.appendChild(meta);
    }
    var body = el("span", "desk-msg-body", m.content);
    if (m.messageType === "FILE" && m.metadata && (m.metadata.attachmentId || m.metadata.url)) {
      body.textContent = "";
      body.appendChild(fileView(m.metadata));
      if (m.content && m.content !== m.metadata.name) body.appendChild(el("span", "desk-file-caption", m.content));
    }
    item.appendChild(body);
    messages.appendChild(item);
  }

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
  $all("[data-desk-mode]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      replyForm.classList.toggle("note", mode() === "NOTE");
      attachButton.hidden = mode() === "NOTE"; // a file is a reply to the donor, never a note
      input.placeholder = mode() === "NOTE" ? t("An internal note: only staff see it.") : t("Reply to the donor. Enter sends, Shift+Enter a new line, / for canned responses.");
    });
  });

  function newKey() { return "desk-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10); }

  function send(content, messageType, key, metadata) {
    var frame = { type: "message", content: content, messageType: messageType, clientMessageId: key };
    if (metadata) frame.metadata = metadata;
    if (thread.socket && thread.socket.readyState === WebSocket.OPEN) {
      thread.socket.send(JSON.stringify(frame));
      return;
    }
    // REST fallback while the socket is down: the same idempotency key, so a retry never doubles it.
    var body = { content: content, messageType: messageType, clientMessageId: key };
    if (metadata) body.metadata = metadata;
    api("POST", "conversations/" + encodeURIComponent(state.current) + "/messages", body)
      .then(function (message) { settlePending(message); addMessage(message); scrollToEnd(); })
      .catch(function (error) { var p = thread.pending.find(function (x) { return x.key === key; }); if (p) failPending(p, problem(error)); });
  }

  replyForm.addEventListener("submit", function (event) {
    event.preventDefault();
    var content = input.value;
    if (!content.trim()) return;
    var key = newKey();
    var pending = { key: key, content: content, messageType: mode(), node: el("li", "desk-msg desk-msg-" + (mode() === "NOTE" ? "NOTE" : "ADMIN")) };
    pending.node.appendChild(el("span", "desk-msg-meta", t("Sending…")));
    pending.node.appendChild(el("span", "desk-msg-body", content));
    messages.appendChild(pending.node);
    thread.pending.push(pending);
    // The box is cleared once, here: a refused send stays in the thread with "Retry", it never comes back.
    input.value = "";
    hideCanned();
    stopTyping();
    scrollToEnd();
    send(content, pending.messageType, key);
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
      send(pending.content, pending.messageType, pending.key, pending.metadata);
    });
    line.appendChild(retry);
    pending.node.appendChild(line);
  }

  input.addEventListener("keydown", function (event) {
    if (cannedOpen() && ["ArrowDown", "ArrowUp", "Enter", "Tab", "Escape"].indexOf(event.key) >= 0) {
      event.preventDefault();
      return moveCanned(event.key);
    }
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
