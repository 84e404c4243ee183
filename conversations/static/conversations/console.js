// Support console: the live thread of a conversation page in Django admin (vanilla JS, no build step).
//
// The socket is /ws/conversations/<id> on this origin without a token: the admin session cookie
// authenticates it (the server also checks the Origin header). Everything a user wrote is put in the
// page with textContent, never as HTML. A dropped socket reconnects with lastMessageId, so the server
// replays what was missed; messages are keyed by id, so a replayed one is never shown twice.
(function () {
  "use strict";

  var root = document.getElementById("live-thread");
  var configNode = document.getElementById("console-config");
  if (!root || !configNode) return;
  var config = JSON.parse(configNode.textContent);

  var list = root.querySelector("[data-console-messages]");
  var input = root.querySelector("[data-console-input]");
  var sendButton = root.querySelector("[data-console-send]");
  var typingLine = root.querySelector("[data-console-typing]");
  var errorLine = root.querySelector("[data-console-error]");
  var statusLine = root.querySelector("[data-console-status]");
  var connectionLine = root.querySelector("[data-console-connection]");

  // Close codes after which reconnecting cannot help (README: 4401, 4403, 4404).
  var FINAL_CLOSE = { 4401: "Your session has expired: reload the page.", 4403: "Not allowed.", 4404: "This conversation no longer exists." };
  var TYPING_REFRESH_MS = 3000; // the server ends a typing state by itself after 10 s without a refresh
  var TYPING_IDLE_MS = 2500;

  var socket = null;
  var retryDelay = 1000;
  var lastMessageId = config.lastMessageId;
  var seen = new Set();
  var typers = new Set();
  var receipts = {}; // userId -> messageId of the last message they have read
  var typingSentAt = 0;
  var typingTimer = null;
  var lastSent = null;

  Array.prototype.forEach.call(list.children, function (item) { seen.add(item.dataset.messageId); });

  // Receipts known when the page was rendered: each other participant's watermark is a seq; the
  // receipt goes on the last rendered message at or below it.
  Object.keys(config.readSeqs).forEach(function (userId) {
    if (userId === config.userId || !config.readSeqs[userId]) return;
    var found = null;
    Array.prototype.forEach.call(list.children, function (item) {
      if (item.dataset.seq && Number(item.dataset.seq) <= config.readSeqs[userId]) found = item;
    });
    if (found) receipts[userId] = found.dataset.messageId;
  });
  renderReceipts();
  scrollToEnd();

  function scrollToEnd() { list.scrollTop = list.scrollHeight; }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = !text;
  }

  function stamp(iso) { return iso ? iso.replace("T", " ").slice(0, 19) : ""; }

  function append(payload, system) {
    if (seen.has(payload.messageId)) return false;
    seen.add(payload.messageId);
    var item = document.createElement("li");
    item.className = "console-msg console-msg-" + String(payload.senderRole || "").toLowerCase() + (system ? " console-msg-system" : "");
    item.dataset.messageId = payload.messageId;
    item.dataset.senderId = payload.senderId;
    var meta = document.createElement("span");
    meta.className = "console-meta";
    var sender = document.createElement("span");
    sender.className = "console-sender";
    sender.textContent = payload.senderId;
    var time = document.createElement("time");
    time.dateTime = payload.createdAt || payload.timestamp || "";
    time.textContent = stamp(payload.createdAt || payload.timestamp);
    meta.append(sender, " ", time);
    var content = document.createElement("span");
    content.className = "console-content";
    content.textContent = system ? payload.message : payload.content;
    var itemReceipts = document.createElement("span");
    itemReceipts.className = "console-receipts";
    itemReceipts.dataset.consoleReceipts = "";
    item.append(meta, content, itemReceipts);
    list.appendChild(item);
    lastMessageId = payload.messageId;
    scrollToEnd();
    return true;
  }

  // Where a reader's "Read by" shows: the latest message up to the one they read that someone else wrote
  // (their own messages count as read when sent, but telling them so under their own words says nothing).
  function receiptPlace(userId, messageId) {
    var items = Array.prototype.slice.call(list.children);
    for (var i = items.length - 1; i >= 0; i -= 1) {
      if (items[i].dataset.messageId !== messageId) continue;
      for (var j = i; j >= 0; j -= 1) {
        if (items[j].dataset.senderId !== userId) return items[j].dataset.messageId;
      }
      return null;
    }
    return messageId;
  }

  function renderReceipts() {
    var byMessage = {};
    Object.keys(receipts).forEach(function (userId) {
      var place = receiptPlace(userId, receipts[userId]);
      if (place) (byMessage[place] = byMessage[place] || []).push(userId);
    });
    Array.prototype.forEach.call(list.children, function (item) {
      var readers = byMessage[item.dataset.messageId];
      item.querySelector("[data-console-receipts]").textContent = readers ? "Read by " + readers.sort().join(", ") : "";
    });
  }

  function renderTyping() {
    var names = Array.from(typers).sort();
    typingLine.textContent = names.length ? names.join(", ") + (names.length > 1 ? " are" : " is") + " typing…" : "";
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  function markRead(messageId) {
    if (document.visibilityState !== "visible") return; // read when seen: on return to the tab
    send(messageId ? { type: "read", messageId: messageId } : { type: "read" });
  }

  function setTyping(active) {
    clearTimeout(typingTimer);
    if (active) {
      var now = Date.now();
      if (now - typingSentAt > TYPING_REFRESH_MS && send({ type: "typing", isTyping: true })) typingSentAt = now;
      typingTimer = setTimeout(function () { setTyping(false); }, TYPING_IDLE_MS);
    } else if (typingSentAt) {
      typingSentAt = 0;
      send({ type: "typing", isTyping: false });
    }
  }

  function newClientMessageId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "c" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function sendReply() {
    var content = input.value;
    if (!content.trim()) return;
    if (!send({ type: "message", content: content, clientMessageId: newClientMessageId() })) {
      showError("Not connected: your reply is kept, send it again once the thread is live.");
      return;
    }
    lastSent = content;
    input.value = "";
    setTyping(false);
    showError("");
  }

  function handle(frame) {
    switch (frame.type) {
      case "message_sent":
        append(frame, false);
        lastSent = null;
        markRead(); // replying marks the whole thread read
        break;
      case "message_received":
        if (append(frame, false)) markRead(frame.messageId);
        // Sending moves the sender's own watermark (no receipt is sent for that): they have read it.
        if (frame.senderId !== config.userId) receipts[frame.senderId] = frame.messageId;
        typers.delete(frame.senderId);
        renderTyping();
        break;
      case "system":
        append(frame, true);
        if (frame.metadata && frame.metadata.status) statusLine.textContent = frame.metadata.status;
        break;
      case "typing_start":
      case "typing_stop":
        if (frame.userId === config.userId) break;
        if (frame.type === "typing_start") typers.add(frame.userId); else typers.delete(frame.userId);
        renderTyping();
        break;
      case "read_receipt":
        if (frame.userId === config.userId) break;
        receipts[frame.userId] = frame.messageId;
        renderReceipts();
        break;
      case "user_left":
        typers.delete(frame.userId);
        renderTyping();
        break;
      case "error":
        showError(frame.message + " (" + frame.code + ")");
        if (lastSent !== null && !input.value) input.value = lastSent; // not stored: give the text back
        lastSent = null;
        break;
      default:
        break;
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var query = lastMessageId ? "?lastMessageId=" + encodeURIComponent(lastMessageId) : "";
    socket = new WebSocket(scheme + location.host + config.wsPath + query);
    socket.onopen = function () {
      retryDelay = 1000;
      connectionLine.textContent = "live";
      connectionLine.classList.add("live");
      root.dataset.live = "true";
      markRead();
    };
    socket.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handle(frame);
      renderReceipts();
    };
    socket.onclose = function (event) {
      socket = null;
      root.dataset.live = "false";
      connectionLine.classList.remove("live");
      typers.clear();
      renderTyping();
      if (FINAL_CLOSE[event.code]) {
        connectionLine.textContent = "offline";
        showError(FINAL_CLOSE[event.code]);
        return;
      }
      // 4008 (this page fell behind) and 4429 (too many sockets open for this account) are worth another
      // try: the page resumes from its last message; a tab closed elsewhere makes room.
      connectionLine.textContent = event.code === 4429 ? "too many open tabs: reconnecting…" : "reconnecting…";
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    };
  }

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendReply();
    }
  });
  input.addEventListener("input", function () { setTyping(Boolean(input.value.trim())); });
  sendButton.addEventListener("click", sendReply);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") markRead(); });

  connect();
})();
