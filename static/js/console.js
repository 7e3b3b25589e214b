// The presenter console: live sessions, one inbox across webinars, the moderation queue and the
// open session (conversation, attendees, results, pushes), over the Socket.IO hub.
// Every text that came from someone is set with textContent / text nodes, never parsed as HTML.
(function () {
  "use strict";
  var root = document.querySelector("[data-console]");
  if (!root) {
    return;
  }

  // The wire vocabulary (app/realtime/protocol.py): event names must match it exactly.
  var EV = {
    HELLO: "hello",
    CHAT: "chat",
    CHAT_REMOVED: "chat:removed",
    RESULTS: "results",
    ATTENDANCE: "attendance",
    CONSOLE: "console",
    WATCH: "watch",
    REPLY: "chat:reply",
    MODERATE: "chat:moderate",
    RESTRICT: "restrict",
    PUSH: "push",
    READ: "chat:read",
  };
  var ACK_TIMEOUT_MS = 10000;
  // Sessions go live and end while the page is open; the list is asked for again this often.
  var REFRESH_MS = 30000;
  var CLICKED = { offer: true, link: true, download: true }; // counted by clicks, not answers
  // Attendance changes come as counts only: the open session's attendee list is read again
  // after them, at most this often.
  var ATTENDEE_REFRESH_MS = 3000;
  var INBOX_LIMIT = 300;
  var MODES = {
    live: "Live now",
    replay: "Replay",
    on_demand: "On demand",
    waiting: "Starting soon",
    ended: "Ended",
    unscheduled: "Not scheduled",
  };

  var canAct = root.getAttribute("data-can-act") === "true";
  var maxChars = parseInt(root.getAttribute("data-max-chars"), 10) || 1000;
  var baseTitle = document.title;

  function q(selector) {
    return root.querySelector(selector);
  }

  var nodes = {
    connection: q("[data-connection]"),
    teamOnline: q("[data-team-online]"),
    sound: q("[data-sound]"),
    notify: q("[data-notify]"),
    notifyState: q("[data-notify-state]"),
    error: q("[data-console-error]"),
    zone: q("[data-zone]"),
    sessions: q("[data-sessions]"),
    sessionsEmpty: q("[data-sessions-empty]"),
    inbox: q("[data-inbox]"),
    inboxEmpty: q("[data-inbox-empty]"),
    totalUnread: q("[data-total-unread]"),
    queue: q("[data-queue]"),
    queueEmpty: q("[data-queue-empty]"),
    queueCount: q("[data-queue-count]"),
    none: q("[data-session-none]"),
    panel: q("[data-session-panel]"),
    title: q("[data-session-title]"),
    meta: q("[data-session-meta]"),
    sessionError: q("[data-session-error]"),
    conversation: q("[data-conversation]"),
    conversationEmpty: q("[data-conversation-empty]"),
    attendees: q("[data-attendees]"),
    attendeesEmpty: q("[data-attendees-empty]"),
    attendeeCount: q("[data-attendee-count]"),
    results: q("[data-results]"),
    resultsEmpty: q("[data-results-empty]"),
    replyForm: q("[data-reply-form]"),
    pushForm: q("[data-push-form]"),
  };

  var state = {
    sessions: [], // ConsoleSession, in the server's order
    inbox: new Map(), // id -> ChatItem (attendee messages)
    queue: new Map(), // id -> ChatItem (pending public messages)
    seen: new Set(), // message ids already known: only unseen ones alert
    results: new Map(), // interaction id -> results
    open: null, // {id, chat: Map, attendees: Map, timeline: Map, restricted: Map}
    target: null, // {registrant_id, name, reply_to, quote}: whom the reply form answers
    errors: new Map(), // row key -> message shown next to that row's controls
    busy: new Set(), // row keys waiting for an answer
  };

  // --- Small helpers --------------------------------------------------------------------------

  function h(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) {
        return;
      }
      if (key === "text") {
        node.textContent = String(value);
      } else if (key === "className") {
        node.className = value;
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) {
        return;
      }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  function snippet(text, length) {
    var value = String(text || "").replace(/\s+/g, " ").trim();
    return value.length > length ? value.slice(0, length - 1) + "…" : value;
  }

  var zoneName = "";
  try {
    zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (ignored) {
    zoneName = "";
  }
  var clockFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  var dayFormat = new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    hour: "numeric",
    minute: "2-digit",
  });

  function sameDay(a, b) {
    return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
  }

  function when(ms) {
    if (typeof ms !== "number") {
      return "";
    }
    var moment = new Date(ms);
    return sameDay(moment, new Date()) ? "today " + clockFormat.format(moment) : dayFormat.format(moment);
  }

  function clock(ms) {
    if (typeof ms !== "number") {
      return "";
    }
    var moment = new Date(ms);
    return sameDay(moment, new Date()) ? clockFormat.format(moment) : dayFormat.format(moment);
  }

  function timeNode(ms, text) {
    return h("time", { datetime: new Date(ms).toISOString(), className: "console-time", text: text });
  }

  if (nodes.zone && zoneName) {
    nodes.zone.textContent = " (" + zoneName + ")";
  }

  // --- The connection -------------------------------------------------------------------------

  function setConnection(kind, text) {
    nodes.connection.setAttribute("data-state", kind);
    nodes.connection.textContent = text;
  }

  function showError(message) {
    nodes.error.textContent = message || "";
    nodes.error.hidden = !message;
  }

  if (typeof window.io !== "function") {
    setConnection("offline", "Not connected");
    showError("The console could not load its connection library. Reload the page to try again.");
    return;
  }

  var socket = window.io({ path: "/socket.io", transports: ["websocket"] });

  function call(event, payload, done) {
    if (!socket.connected) {
      done({ ok: false, error: { code: "offline", message: "Not connected. Wait for the connection to come back, then try again." } });
      return;
    }
    socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, function (err, response) {
      if (err) {
        done({ ok: false, error: { code: "timeout", message: "The server did not answer. Try again." } });
        return;
      }
      if (!response || typeof response !== "object") {
        done({ ok: false, error: { code: "bad_answer", message: "The server sent an answer the console does not understand." } });
        return;
      }
      if (!response.ok && !(response.error && response.error.message)) {
        response.error = { code: "refused", message: "The server refused this." };
      }
      done(response);
    });
  }

  socket.on("connect", function () {
    setConnection("online", "Connected");
    showError("");
    loadConsole();
    if (state.open) {
      watch(state.open.id, false);
    }
  });

  socket.on("disconnect", function (reason) {
    if (reason === "io server disconnect") {
      // The server ended it (signed out, account disabled): no automatic reconnection follows.
      setConnection("offline", "Disconnected");
      showError("The server closed the connection. Reload the page to connect again.");
      return;
    }
    setConnection("connecting", "Connection lost, reconnecting…");
  });

  socket.on("connect_error", function (error) {
    if (socket.active) {
      setConnection("connecting", "Connection lost, reconnecting…");
      return;
    }
    // Refused by the server: the sign-in has ended.
    setConnection("offline", "Not connected");
    var message = (error && error.message) || "The server refused the connection.";
    clear(nodes.error);
    nodes.error.appendChild(document.createTextNode(message + " "));
    nodes.error.appendChild(h("a", { href: "/login?next=" + encodeURIComponent("/admin/console"), text: "Sign in again" }));
    nodes.error.hidden = false;
  });

  socket.on(EV.HELLO, function (hello) {
    if (hello && typeof hello.name === "string") {
      nodes.connection.setAttribute("title", "Connected as " + hello.name + " (" + hello.role + ")");
    }
  });

  function loadConsole() {
    call(EV.CONSOLE, {}, function (response) {
      if (!response.ok) {
        showError("The console could not load: " + response.error.message);
        return;
      }
      showError("");
      applyConsole(response.console || {});
    });
  }

  window.setInterval(function () {
    if (socket.connected) {
      loadConsole();
    }
  }, REFRESH_MS);

  // --- Sessions -------------------------------------------------------------------------------

  function sessionById(id) {
    for (var i = 0; i < state.sessions.length; i += 1) {
      if (state.sessions[i].id === id) {
        return state.sessions[i];
      }
    }
    return null;
  }

  function applyConsole(payload) {
    state.sessions = Array.isArray(payload.sessions) ? payload.sessions.slice() : [];
    var inbox = Array.isArray(payload.inbox) ? payload.inbox : [];
    var queue = Array.isArray(payload.queue) ? payload.queue : [];
    var previous = state.inbox;
    state.inbox = new Map();
    var newest = 0;
    inbox.forEach(function (item) {
      state.inbox.set(item.id, item);
      state.seen.add(item.id);
      newest = Math.max(newest, item.id);
    });
    // Messages that arrived while the answer was on its way are newer than anything in it.
    previous.forEach(function (item) {
      if (item.id > newest) {
        state.inbox.set(item.id, item);
      }
    });
    state.queue = new Map();
    queue.forEach(function (item) {
      state.queue.set(item.id, item);
      state.seen.add(item.id);
    });
    if (typeof payload.team_online === "number") {
      nodes.teamOnline.textContent = plural(payload.team_online, "teammate", "teammates") + " in the console";
    }
    if (state.open) {
      var session = sessionById(state.open.id);
      if (session) {
        state.open.session = session;
      }
    }
    renderSessions();
    renderInbox();
    renderQueue();
    if (state.open) {
      renderSessionHead();
      if (state.open.session && state.open.session.unread > 0 && pageVisible()) {
        markRead(state.open.id);
      }
    }
    updateTitle();
    scheduleTurn();
  }

  // A session turns live at its start and ends after its video: read the list again just then,
  // not only at the next periodic refresh.
  var turnTimer = null;
  function scheduleTurn() {
    if (turnTimer !== null) {
      window.clearTimeout(turnTimer);
      turnTimer = null;
    }
    var now = Date.now();
    var next = Infinity;
    state.sessions.forEach(function (session) {
      if (typeof session.starts_at_ms !== "number") {
        return;
      }
      var ends = session.starts_at_ms + (session.duration || 0) * 1000;
      [session.starts_at_ms, ends].forEach(function (moment) {
        if (moment > now && moment < next) {
          next = moment;
        }
      });
    });
    if (next - now < REFRESH_MS) {
      turnTimer = window.setTimeout(function () {
        turnTimer = null;
        if (socket.connected) {
          loadConsole();
        }
      }, next - now + 500);
    }
  }

  function totalUnread() {
    var total = state.sessions.reduce(function (sum, session) {
      return sum + (session.unread > 0 ? session.unread : 0);
    }, 0);
    // Sessions the list leaves out (on demand, ended) still have people waiting for an answer.
    state.inbox.forEach(function (item) {
      if (isUnread(item) && !sessionById(item.session_id)) {
        total += 1;
      }
    });
    return total;
  }

  function updateTitle() {
    var total = totalUnread();
    document.title = total > 0 ? "(" + total + ") " + baseTitle : baseTitle;
    nodes.totalUnread.textContent = total > 0 ? total + " unread" : "";
    nodes.totalUnread.hidden = total === 0;
  }

  function renderSessions() {
    keepFocus(nodes.sessions, fillSessions);
    nodes.sessionsEmpty.hidden = state.sessions.length > 0;
  }

  function fillSessions() {
    clear(nodes.sessions);
    state.sessions.forEach(function (session) {
      var open = state.open && state.open.id === session.id;
      var start = session.starts_at_ms === null ? "On demand" : "Starts " + when(session.starts_at_ms);
      var facts = [
        h("span", { className: "badge console-mode console-mode-" + session.mode, text: MODES[session.mode] || session.mode }),
        h("span", { className: "console-online", text: session.online + " online" }),
      ];
      if (session.unread > 0) {
        facts.push(h("span", { className: "badge badge-unread", "data-unread": session.unread, text: session.unread + " unread" }));
      }
      var button = h("button", {
        type: "button",
        className: "btn btn-small" + (open ? " btn-primary" : ""),
        "data-action": "open-session",
        "aria-pressed": open ? "true" : "false",
      }, ["Open", h("span", { className: "sr-only", text: " " + session.webinar_title + ", " + start })]);
      nodes.sessions.appendChild(h("li", {
        className: "console-session" + (open ? " is-open" : ""),
        "data-session-id": session.id,
        "data-key": "session:" + session.id,
      }, [
        h("div", { className: "console-session-text" }, [
          h("strong", { text: session.webinar_title }),
          h("span", { className: "muted small", text: start }),
          h("span", { className: "console-facts" }, facts),
        ]),
        button,
      ]));
    });
  }

  // --- Messages: inbox, queue and the open conversation ---------------------------------------

  function isUnread(item) {
    // A new message may come without the mark: only the team reading it sets it.
    return item.sender === "attendee" && item.read !== true;
  }

  function bumpUnread(sessionId, delta) {
    var session = sessionById(sessionId);
    if (session) {
      session.unread = Math.max(0, (session.unread || 0) + delta);
    }
  }

  function merged(before, item) {
    // Updates (approve, pin) may carry less about the writer than the first copy did.
    var next = Object.assign({}, before || {}, item);
    if (before) {
      ["name", "email", "webinar_title"].forEach(function (key) {
        if (before[key]) {
          next[key] = before[key];
        }
      });
    }
    return next;
  }

  function upsert(item) {
    var known = state.seen.has(item.id);
    var before = state.inbox.get(item.id) || (state.open && state.open.chat.get(item.id)) || null;
    item = merged(before, item);
    state.seen.add(item.id);
    if (item.sender === "attendee") {
      if (!known && isUnread(item)) {
        bumpUnread(item.session_id, 1);
      } else if (before && isUnread(before) && !isUnread(item)) {
        bumpUnread(item.session_id, -1);
      }
      state.inbox.set(item.id, item);
    } else if (!known && item.visibility === "private" && typeof item.registrant_id === "number") {
      // A teammate answered this conversation, which reads it (as the server records).
      readConversation(item.session_id, item.registrant_id);
    }
    if (item.visibility === "pending") {
      state.queue.set(item.id, item);
    } else {
      state.queue.delete(item.id);
    }
    if (state.open && state.open.id === item.session_id) {
      state.open.chat.set(item.id, item);
    }
    return !known && item.sender === "attendee";
  }

  function remove(id) {
    var before = state.inbox.get(id);
    if (before && isUnread(before)) {
      bumpUnread(before.session_id, -1);
    }
    state.inbox.delete(id);
    state.queue.delete(id);
    if (state.open) {
      state.open.chat.delete(id);
    }
  }

  socket.on(EV.CHAT, function (batch) {
    var messages = batch && Array.isArray(batch.messages) ? batch.messages : [];
    var fresh = [];
    messages.forEach(function (item) {
      if (item && typeof item.id === "number" && upsert(item)) {
        fresh.push(item);
      }
    });
    var openHere = fresh.filter(function (item) {
      return state.open && state.open.id === item.session_id;
    });
    if (openHere.length && pageVisible()) {
      markRead(state.open.id);
    }
    var elsewhere = fresh.filter(function (item) {
      return !pageVisible() || !state.open || state.open.id !== item.session_id;
    });
    if (elsewhere.length) {
      alertNew(elsewhere);
    }
    renderAll();
  });

  socket.on(EV.CHAT_REMOVED, function (payload) {
    var ids = payload && Array.isArray(payload.ids) ? payload.ids : [];
    ids.forEach(remove);
    renderAll();
  });

  socket.on(EV.ATTENDANCE, function (payload) {
    if (!payload) {
      return;
    }
    var session = sessionById(payload.session_id);
    if (session) {
      session.online = payload.online;
      renderSessions();
    }
    if (state.open && state.open.id === payload.session_id) {
      state.open.online = payload.online;
      renderSessionHead();
      scheduleAttendeeRefresh();
    }
  });

  socket.on(EV.RESULTS, function (payload) {
    if (!payload || typeof payload.interaction_id !== "number") {
      return;
    }
    // Results are per session: another session's tally of the same interaction is not this one's.
    if (!state.open || payload.session_id !== state.open.id) {
      return;
    }
    state.results.set(payload.interaction_id, payload.results || {});
    if (state.open && state.open.timeline.has(payload.interaction_id)) {
      renderResults();
    }
  });

  function renderAll() {
    renderSessions();
    renderInbox();
    renderQueue();
    if (state.open) {
      renderConversation();
    }
    updateTitle();
  }

  function keepFocus(list, render) {
    // Rows are rebuilt on every change: the focused control is found again by its row and action.
    var active = document.activeElement;
    var row = active && list.contains(active) ? active.closest("[data-key]") : null;
    var key = row ? row.getAttribute("data-key") : null;
    var action = active && active.getAttribute ? active.getAttribute("data-action") : null;
    render();
    if (key) {
      var again = list.querySelector('[data-key="' + key + '"]');
      var target = again && action ? again.querySelector('[data-action="' + action + '"]') : null;
      if (target && !target.disabled) {
        target.focus();
      } else if (again) {
        var fallback = again.querySelector("button:not([disabled])");
        if (fallback) {
          fallback.focus();
        }
      }
    }
  }

  function errorNode(key) {
    var message = state.errors.get(key);
    return h("span", { className: "console-error", role: "alert", text: message || "", hidden: !message });
  }

  function actionButton(action, label, key, extra) {
    var attrs = {
      type: "button",
      className: "btn btn-small" + (extra && extra.danger ? " btn-danger" : ""),
      "data-action": action,
      disabled: state.busy.has(key),
    };
    return h("button", attrs, [label, extra && extra.sr ? h("span", { className: "sr-only", text: extra.sr }) : null]);
  }

  function messageHead(item, parts) {
    var head = [h("strong", { className: "console-name", text: item.name || (item.sender === "team" ? "Team" : "Attendee") })];
    return h("span", { className: "console-msg-head" }, head.concat(parts));
  }

  function webinarOf(item) {
    if (item.webinar_title) {
      return item.webinar_title;
    }
    var session = sessionById(item.session_id);
    return session ? session.webinar_title : "";
  }

  function sortedNewest(map) {
    return Array.from(map.values()).sort(function (a, b) {
      return b.at_ms - a.at_ms || b.id - a.id;
    });
  }

  function renderInbox() {
    var items = sortedNewest(state.inbox).slice(0, INBOX_LIMIT);
    keepFocus(nodes.inbox, function () {
      clear(nodes.inbox);
      items.forEach(function (item) {
        var key = "msg:" + item.id;
        var unread = isUnread(item);
        var parts = [];
        if (item.email) {
          parts.push(h("span", { className: "muted small console-email", text: item.email }));
        }
        var webinar = webinarOf(item);
        if (webinar) {
          parts.push(h("span", { className: "muted small", text: webinar }));
        }
        parts.push(timeNode(item.at_ms, clock(item.at_ms)));
        if (unread) {
          parts.push(h("span", { className: "badge badge-unread", text: "New" }));
        }
        if (item.visibility === "pending") {
          parts.push(h("span", { className: "badge badge-warn", text: "Waiting for approval" }));
        } else if (item.visibility === "public") {
          parts.push(h("span", { className: "badge", text: "Public" }));
        }
        nodes.inbox.appendChild(h("li", {
          className: "console-message" + (unread ? " is-unread" : ""),
          "data-key": key,
          "data-id": item.id,
        }, [
          messageHead(item, parts),
          h("p", { className: "console-body", text: item.body }),
          h("span", { className: "console-actions" }, [
            actionButton("open-conversation", "Open conversation", key, { sr: " with " + (item.name || "this attendee") }),
            errorNode(key),
          ]),
        ]));
      });
    });
    nodes.inboxEmpty.hidden = items.length > 0;
  }

  function renderQueue() {
    var items = sortedNewest(state.queue).reverse();
    keepFocus(nodes.queue, function () {
      clear(nodes.queue);
      items.forEach(function (item) {
        var key = "msg:" + item.id;
        var actions = [];
        if (canAct) {
          actions.push(actionButton("approve", "Approve", key, { sr: " the message from " + item.name }));
          actions.push(actionButton("delete", "Delete", key, { danger: true, sr: " the message from " + item.name }));
        }
        actions.push(errorNode(key));
        nodes.queue.appendChild(h("li", { className: "console-message", "data-key": key, "data-id": item.id }, [
          messageHead(item, [h("span", { className: "muted small", text: webinarOf(item) }), timeNode(item.at_ms, clock(item.at_ms))]),
          h("p", { className: "console-body", text: item.body }),
          h("span", { className: "console-actions" }, actions),
        ]));
      });
    });
    nodes.queueEmpty.hidden = items.length > 0;
    nodes.queueCount.textContent = items.length ? String(items.length) : "";
    nodes.queueCount.hidden = items.length === 0;
  }

  function attendeeName(registrantId) {
    var attendee = state.open && state.open.attendees.get(registrantId);
    if (attendee) {
      return attendee.name;
    }
    var found = null;
    state.inbox.forEach(function (item) {
      if (!found && item.registrant_id === registrantId) {
        found = item.name;
      }
    });
    return found || "an attendee";
  }

  function audienceText(item) {
    if (item.visibility === "pending") {
      return "waiting for approval";
    }
    if (item.visibility === "public") {
      return item.sender === "team" ? "to everyone" : "public";
    }
    if (item.sender === "team") {
      return typeof item.registrant_id === "number" ? "privately to " + attendeeName(item.registrant_id) : "private";
    }
    return "to the team";
  }

  function renderConversation() {
    var open = state.open;
    var items = Array.from(open.chat.values()).sort(function (a, b) {
      return a.at_ms - b.at_ms || a.id - b.id;
    });
    var list = nodes.conversation;
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    keepFocus(list, function () {
      clear(list);
      items.forEach(function (item) {
        var key = "msg:" + item.id;
        var parts = [h("span", { className: "muted small", text: audienceText(item) }), timeNode(item.at_ms, clock(item.at_ms))];
        if (item.pinned) {
          parts.push(h("span", { className: "badge badge-ok", text: "Pinned" }));
        }
        var children = [messageHead(item, parts)];
        if (typeof item.reply_to === "number") {
          var original = open.chat.get(item.reply_to);
          children.push(h("p", {
            className: "console-quote",
            text: original ? "In reply to " + original.name + ": " + snippet(original.body, 80) : "In reply to an earlier message",
          }));
        }
        children.push(h("p", { className: "console-body", text: item.body }));
        var actions = [];
        if (canAct) {
          var who = item.name || "this attendee";
          if (item.sender === "attendee" && typeof item.registrant_id === "number") {
            actions.push(actionButton("reply-to", "Reply", key, { sr: " to " + who }));
          }
          if (item.visibility === "pending") {
            actions.push(actionButton("approve", "Approve", key, { sr: " the message from " + who }));
          }
          if (item.visibility === "public") {
            actions.push(item.pinned
              ? actionButton("unpin", "Unpin", key, { sr: " the message from " + who })
              : actionButton("pin", "Pin", key, { sr: " the message from " + who }));
          }
          actions.push(actionButton("delete", "Delete", key, { danger: true, sr: " the message from " + who }));
        }
        actions.push(errorNode(key));
        children.push(h("span", { className: "console-actions" }, actions));
        list.appendChild(h("li", {
          className: "console-message console-from-" + item.sender + (item.visibility === "pending" ? " is-pending" : ""),
          "data-key": key,
          "data-id": item.id,
        }, children));
      });
    });
    nodes.conversationEmpty.hidden = items.length > 0;
    if (nearBottom) {
      list.scrollTop = list.scrollHeight;
    }
  }

  // --- The open session -----------------------------------------------------------------------

  function renderSessionHead() {
    var open = state.open;
    var session = open.session;
    var title = session ? session.webinar_title : open.title || "Session";
    nodes.title.textContent = title;
    var parts = [];
    if (session) {
      parts.push(MODES[session.mode] || session.mode);
      parts.push(session.starts_at_ms === null ? "on demand" : "starts " + when(session.starts_at_ms));
    }
    var online = typeof open.online === "number" ? open.online : session ? session.online : null;
    if (online !== null) {
      parts.push(online + " online");
    }
    nodes.meta.textContent = parts.join(" · ");
  }

  function renderAttendees() {
    var open = state.open;
    var list = Array.from(open.attendees.values()).sort(function (a, b) {
      if (a.online !== b.online) {
        return a.online ? -1 : 1;
      }
      return String(a.name).localeCompare(String(b.name));
    });
    keepFocus(nodes.attendees, function () {
      clear(nodes.attendees);
      list.forEach(function (attendee) {
        var key = "att:" + attendee.registrant_id;
        var restricted = open.restricted.get(attendee.registrant_id);
        var facts = [
          h("span", { className: "console-presence" + (attendee.online ? " is-online" : ""), text: attendee.online ? "online" : "left" }),
        ];
        if (restricted) {
          facts.push(h("span", { className: "badge badge-failed", text: restricted === "ban" ? "Banned" : "Muted" }));
        }
        var actions = [];
        if (canAct) {
          var who = " " + attendee.name;
          actions.push(actionButton("message", "Message", key, { sr: who + " privately" }));
          if (restricted !== "mute") {
            actions.push(actionButton("mute", "Mute", key, { sr: who }));
          }
          if (restricted !== "ban") {
            actions.push(actionButton("ban", "Ban", key, { danger: true, sr: who }));
          }
          if (restricted) {
            actions.push(actionButton("lift", restricted === "ban" ? "Lift ban" : "Unmute", key, { sr: who }));
          }
        }
        actions.push(errorNode(key));
        nodes.attendees.appendChild(h("li", {
          className: "console-attendee",
          "data-key": key,
          "data-registrant": attendee.registrant_id,
        }, [
          h("span", { className: "console-attendee-text" }, [
            h("strong", { text: attendee.name }),
            h("span", { className: "muted small console-email", text: attendee.email }),
            h("span", { className: "console-facts" }, facts),
          ]),
          h("span", { className: "console-actions" }, actions),
        ]));
      });
    });
    var online = list.filter(function (attendee) {
      return attendee.online;
    }).length;
    nodes.attendeeCount.textContent = list.length ? "(" + online + " of " + list.length + " online)" : "";
    nodes.attendeesEmpty.hidden = list.length > 0;
  }

  function label(key) {
    var words = String(key).replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function bars(counts, names, answers) {
    // Shares are of the people who answered: with several choices each they add up past 100%.
    var total = answers || 0;
    return h("ul", { className: "console-bars" }, counts.map(function (raw, index) {
      var count = typeof raw === "number" ? raw : 0;
      var percent = total ? Math.round((count / total) * 100) : 0;
      return h("li", {}, [
        h("span", { className: "console-bar-label", text: names[index] }),
        h("progress", { max: total || 1, value: count, "aria-hidden": "true" }),
        h("span", { className: "console-bar-value", text: count + " (" + percent + "%)" }),
      ]);
    }));
  }

  function countLabels(interaction, length) {
    var kind = interaction ? interaction.kind : "";
    var config = (interaction && interaction.config) || {};
    var labels = [];
    for (var index = 0; index < length; index += 1) {
      if (kind === "nps") {
        labels.push(String(index));
      } else if (kind === "rating") {
        labels.push(index + 1 + " of " + length);
      } else if (Array.isArray(config.options) && config.options[index] !== undefined) {
        labels.push(String(config.options[index]));
      } else {
        labels.push("Option " + (index + 1));
      }
    }
    return labels;
  }

  function resultBody(interaction, results) {
    // Shapes by kind: poll and quiz {counts, total, correct?, correct_share?}, nps {counts,
    // total, promoters, passives, detractors, score}, rating {counts, total, average}, offers
    // and links {total} (clicks).
    var kind = interaction ? interaction.kind : "";
    var facts = [];
    var parts = [];
    function fact(name, value) {
      facts.push(h("div", {}, [h("dt", { text: name }), h("dd", { text: String(value) })]));
    }
    var data = results || {};
    if (typeof data.total === "number") {
      fact(kind === "offer" || kind === "link" || kind === "download" ? "Clicks" : "Answers", data.total);
    }
    if (kind === "nps" && data.total) {
      fact("NPS", data.score);
      fact("Promoters", data.promoters);
      fact("Passives", data.passives);
      fact("Detractors", data.detractors);
    }
    if (typeof data.average === "number") {
      fact("Average", data.average);
    }
    if (typeof data.correct_share === "number" && data.total) {
      fact("Answered correctly", Math.round(data.correct_share * 100) + "%");
    }
    if (Array.isArray(data.correct) && data.correct.length) {
      var labels = countLabels(interaction, Array.isArray(data.counts) ? data.counts.length : 0);
      fact("Correct", data.correct.map(function (index) {
        return labels[index] || "Option " + (index + 1);
      }).join(", "));
    }
    if (facts.length) {
      parts.push(h("dl", { className: "console-facts-list" }, facts));
    }
    if (Array.isArray(data.counts) && data.counts.length) {
      parts.push(bars(data.counts, countLabels(interaction, data.counts.length), data.total));
    }
    if (!data.total) {
      parts.push(h("p", { className: "muted small", text: kind === "offer" ? "No clicks yet." : "No answers yet." }));
    }
    return parts;
  }

  function renderResults() {
    var open = state.open;
    clear(nodes.results);
    var shown = 0;
    open.timeline.forEach(function (interaction) {
      var results = state.results.get(interaction.id);
      var kind = label(interaction.kind);
      nodes.results.appendChild(h("article", { className: "console-result", "data-interaction": interaction.id }, [
        h("h3", {}, [h("span", { className: "badge", text: kind }), " ", interaction.title || ""]),
      ].concat(results ? resultBody(interaction, results) : [h("p", { className: "muted small", text: CLICKED[interaction.kind] ? "No clicks yet." : "No answers yet." })])));
      shown += 1;
    });
    nodes.resultsEmpty.hidden = shown > 0;
  }

  function renderPanel() {
    var open = state.open;
    nodes.none.hidden = Boolean(open);
    nodes.panel.hidden = !open;
    if (!open) {
      return;
    }
    renderSessionHead();
    renderConversation();
    renderAttendees();
    renderResults();
    renderTarget();
  }

  function openSession(sessionId, target, title) {
    var already = state.open && state.open.id === sessionId;
    if (!already) {
      state.open = {
        id: sessionId,
        title: title || "",
        session: sessionById(sessionId),
        chat: new Map(),
        attendees: new Map(),
        timeline: new Map(),
        restricted: new Map(),
        online: null,
      };
      state.target = null;
      nodes.sessionError.hidden = true;
    }
    if (target) {
      setTarget(target);
    }
    renderSessions();
    renderPanel();
    nodes.title.focus();
    if (!already) {
      watch(sessionId, true);
    } else {
      markRead(sessionId);
    }
  }

  function applyWatch(open, response) {
    (response.chat || []).forEach(function (item) {
      if (!open.title && item.webinar_title) {
        open.title = item.webinar_title;
      }
      state.seen.add(item.id);
      if (!open.chat.has(item.id)) {
        open.chat.set(item.id, item);
      }
    });
    open.attendees = new Map();
    open.restricted = new Map();
    (response.attendees || []).forEach(function (attendee) {
      open.attendees.set(attendee.registrant_id, attendee);
      if (attendee.restriction) {
        open.restricted.set(attendee.registrant_id, attendee.restriction);
      }
    });
    open.online = (response.attendees || []).filter(function (attendee) {
      return attendee.online;
    }).length;
    (response.timeline || []).forEach(function (interaction) {
      open.timeline.set(interaction.id, interaction);
    });
    (response.results || []).forEach(function (payload) {
      state.results.set(payload.interaction_id, payload.results || {});
    });
  }

  function watch(sessionId, markAfter) {
    call(EV.WATCH, { session_id: sessionId }, function (response) {
      var open = state.open;
      if (!open || open.id !== sessionId) {
        return;
      }
      if (!response.ok) {
        nodes.sessionError.textContent = "This session could not be opened: " + response.error.message;
        nodes.sessionError.hidden = false;
        return;
      }
      nodes.sessionError.hidden = true;
      applyWatch(open, response);
      renderPanel();
      if (markAfter) {
        markRead(sessionId);
      }
    });
  }

  var attendeeTimer = null;
  function scheduleAttendeeRefresh() {
    if (attendeeTimer !== null) {
      return;
    }
    attendeeTimer = window.setTimeout(function () {
      attendeeTimer = null;
      if (state.open && socket.connected) {
        watch(state.open.id, false);
      }
    }, ATTENDEE_REFRESH_MS);
  }

  var reading = new Set();
  function markRead(sessionId) {
    var session = sessionById(sessionId);
    var unreadHere = false;
    state.inbox.forEach(function (item) {
      if (item.session_id === sessionId && isUnread(item)) {
        unreadHere = true;
      }
    });
    if (!canAct || reading.has(sessionId) || (!unreadHere && !(session && session.unread > 0))) {
      return;
    }
    reading.add(sessionId);
    call(EV.READ, { session_id: sessionId }, function (response) {
      reading.delete(sessionId);
      if (!response.ok) {
        nodes.sessionError.textContent = "Could not mark the messages read: " + response.error.message;
        nodes.sessionError.hidden = false;
        return;
      }
      var again = sessionById(sessionId);
      if (again) {
        again.unread = 0;
      }
      state.inbox.forEach(function (item) {
        if (item.session_id === sessionId && item.sender === "attendee") {
          item.read = true;
        }
      });
      renderSessions();
      renderInbox();
      updateTitle();
    });
  }

  function readConversation(sessionId, registrantId) {
    state.inbox.forEach(function (item) {
      if (item.session_id === sessionId && item.registrant_id === registrantId && isUnread(item)) {
        item.read = true;
        bumpUnread(sessionId, -1);
      }
    });
  }

  // Another console (or this one) read messages: the server tells every console.
  socket.on(EV.READ, function (payload) {
    if (!payload || typeof payload.session_id !== "number") {
      return;
    }
    if (typeof payload.registrant_id === "number") {
      readConversation(payload.session_id, payload.registrant_id);
    } else {
      var session = sessionById(payload.session_id);
      if (session) {
        session.unread = 0;
      }
      state.inbox.forEach(function (item) {
        if (item.session_id === payload.session_id && item.sender === "attendee") {
          item.read = true;
        }
      });
    }
    renderSessions();
    renderInbox();
    updateTitle();
  });

  function closeSession() {
    state.open = null;
    state.target = null;
    renderSessions();
    renderPanel();
  }

  // --- The reply form -------------------------------------------------------------------------

  function setTarget(target) {
    state.target = target;
    renderTarget();
    if (nodes.replyForm && target && !target.keepAudience) {
      // Choosing someone means writing to them; the audience stays as chosen after that.
      nodes.replyForm.querySelector("[data-audience-private]").checked = true;
    }
    var body = root.querySelector("[data-reply-body]");
    if (body && state.open) {
      body.focus();
    }
  }

  function renderTarget() {
    var form = nodes.replyForm;
    if (!form) {
      return;
    }
    var privateChoice = form.querySelector("[data-audience-private]");
    var privateLabel = form.querySelector("[data-private-label]");
    var context = form.querySelector("[data-reply-context]");
    var target = state.target;
    if (target) {
      privateChoice.disabled = false;
      privateLabel.textContent = "Privately to " + target.name;
    } else {
      privateChoice.disabled = true;
      privateLabel.textContent = "Privately to one attendee (choose “Reply” on a message or “Message” beside an attendee)";
      form.querySelector('input[name="audience"][value="public"]').checked = true;
    }
    if (target && typeof target.reply_to === "number") {
      form.querySelector("[data-reply-context-text]").textContent = "In reply to " + target.name + ": “" + snippet(target.quote, 80) + "”";
      context.hidden = false;
    } else {
      context.hidden = true;
    }
  }

  function fieldError(input, errorNodeEl, message) {
    errorNodeEl.textContent = message || "";
    errorNodeEl.hidden = !message;
    if (message) {
      input.setAttribute("aria-invalid", "true");
    } else {
      input.removeAttribute("aria-invalid");
    }
  }

  if (nodes.replyForm) {
    nodes.replyForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var form = nodes.replyForm;
      var input = form.querySelector("[data-reply-body]");
      var error = form.querySelector("[data-reply-error]");
      var status = form.querySelector("[data-reply-status]");
      var send = form.querySelector("[data-reply-send]");
      status.textContent = "";
      var body = input.value.trim();
      if (!body) {
        fieldError(input, error, "Write a message first.");
        input.focus();
        return;
      }
      if (body.length > maxChars) {
        fieldError(input, error, "A message has at most " + maxChars + " characters (this one has " + body.length + ").");
        input.focus();
        return;
      }
      if (!state.open) {
        fieldError(input, error, "Open a session first.");
        return;
      }
      fieldError(input, error, "");
      var isPublic = form.querySelector('input[name="audience"]:checked').value === "public";
      var target = state.target;
      var payload = { session_id: state.open.id, body: body, public: isPublic };
      if (target && typeof target.reply_to === "number") {
        payload.reply_to = target.reply_to;
      }
      if (!isPublic && target) {
        payload.registrant_id = target.registrant_id;
      }
      send.disabled = true;
      call(EV.REPLY, payload, function (response) {
        send.disabled = false;
        if (!response.ok) {
          // What was typed stays in the box.
          fieldError(input, error, response.error.message);
          return;
        }
        input.value = "";
        var name = target ? target.name : "the attendee";
        status.textContent = isPublic
          ? "Sent to everyone."
          : response.emailed ? "Sent to " + name + ", who has left the room: it was emailed to them." : "Sent to " + name + ".";
        if (!isPublic && target) {
          // Answering a conversation reads it.
          readConversation(payload.session_id, target.registrant_id);
        }
        if (response.message && typeof response.message.id === "number") {
          upsert(response.message);
        }
        renderAll();
        if (target) {
          // Further messages go to the same person, no longer as a reply to that one message.
          setTarget({ registrant_id: target.registrant_id, name: target.name, reply_to: null, keepAudience: true });
        }
      });
    });
    nodes.replyForm.querySelector("[data-clear-reply]").addEventListener("click", function () {
      if (state.target) {
        state.target = { registrant_id: state.target.registrant_id, name: state.target.name, reply_to: null, keepAudience: true };
        renderTarget();
        nodes.replyForm.querySelector("[data-reply-body]").focus();
      }
    });
  }

  // --- Row actions ----------------------------------------------------------------------------

  function runAction(key, event, payload, after) {
    state.errors.delete(key);
    state.busy.add(key);
    renderAll();
    if (state.open) {
      renderAttendees();
    }
    call(event, payload, function (response) {
      state.busy.delete(key);
      if (!response.ok) {
        state.errors.set(key, response.error.message);
      } else if (after) {
        after(response);
      }
      renderAll();
      if (state.open) {
        renderAttendees();
      }
    });
  }

  function messageById(id) {
    return state.inbox.get(id) || state.queue.get(id) || (state.open && state.open.chat.get(id)) || null;
  }

  function moderate(id, action) {
    runAction("msg:" + id, EV.MODERATE, { message_id: id, action: action }, function () {
      var item = messageById(id);
      if (!item) {
        return;
      }
      if (action === "delete") {
        remove(id);
      } else if (action === "approve") {
        upsert(Object.assign({}, item, { visibility: "public" }));
      } else {
        upsert(Object.assign({}, item, { pinned: action === "pin" }));
      }
    });
  }

  function restrict(registrantId, action) {
    var open = state.open;
    if (!open) {
      return;
    }
    var attendee = open.attendees.get(registrantId);
    var name = attendee ? attendee.name : "this attendee";
    if (action === "ban" && !window.confirm("Ban " + name + " from this session? They are removed from the room and cannot join it again.")) {
      return;
    }
    runAction("att:" + registrantId, EV.RESTRICT, { session_id: open.id, registrant_id: registrantId, action: action }, function () {
      if (action === "lift") {
        open.restricted.delete(registrantId);
      } else {
        open.restricted.set(registrantId, action);
      }
    });
  }

  root.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (!button || !root.contains(button) || button.disabled) {
      return;
    }
    var action = button.getAttribute("data-action");
    var row = button.closest("[data-key]");
    var sessionRow = button.closest("[data-session-id]");
    if (action === "open-session" && sessionRow) {
      openSession(parseInt(sessionRow.getAttribute("data-session-id"), 10), null, "");
      return;
    }
    if (!row) {
      return;
    }
    var id = parseInt(row.getAttribute("data-id"), 10);
    var registrant = parseInt(row.getAttribute("data-registrant"), 10);
    var item = isNaN(id) ? null : messageById(id);
    if (action === "open-conversation" && item) {
      openSession(item.session_id, canAct && typeof item.registrant_id === "number"
        ? { registrant_id: item.registrant_id, name: item.name, reply_to: item.id, quote: item.body }
        : null, webinarOf(item));
    } else if (action === "reply-to" && item) {
      setTarget({ registrant_id: item.registrant_id, name: item.name, reply_to: item.id, quote: item.body });
    } else if (action === "message" && !isNaN(registrant)) {
      setTarget({ registrant_id: registrant, name: attendeeName(registrant), reply_to: null });
    } else if ((action === "approve" || action === "pin" || action === "unpin" || action === "delete") && item) {
      moderate(id, action);
    } else if ((action === "mute" || action === "ban" || action === "lift") && !isNaN(registrant)) {
      restrict(registrant, action);
    }
  });

  root.querySelector("[data-close-session]").addEventListener("click", closeSession);

  // --- Push -----------------------------------------------------------------------------------

  function pushKind() {
    return nodes.pushForm.querySelector("[data-push-kind]").value;
  }

  function showPushFields() {
    var kind = pushKind();
    Array.prototype.forEach.call(nodes.pushForm.querySelectorAll("[data-push-fields]"), function (group) {
      group.hidden = group.getAttribute("data-push-fields") !== kind;
    });
  }

  function pushField(name) {
    return nodes.pushForm.elements.namedItem(name);
  }

  function readPush() {
    // Each problem is shown under its own field; nothing typed is cleared.
    var kind = pushKind();
    var problems = [];
    var title = "";
    var config = {};
    function check(input, message) {
      var error = document.getElementById(input.id + "-error");
      fieldError(input, error, message);
      if (message) {
        problems.push(input);
      }
    }
    Array.prototype.forEach.call(nodes.pushForm.querySelectorAll("[data-push-fields] .field-error"), function (error) {
      var input = document.getElementById(error.id.replace(/-error$/, ""));
      fieldError(input, error, "");
    });
    if (kind === "poll") {
      var question = pushField("question");
      title = question.value.trim();
      check(question, title ? "" : "Write the question.");
      var optionsInput = pushField("options");
      var options = optionsInput.value.split("\n").map(function (line) {
        return line.trim();
      }).filter(Boolean);
      var optionProblem = "";
      if (options.length < 2) {
        optionProblem = "Give at least two options, one per line.";
      } else if (options.length > 10) {
        optionProblem = "At most 10 options (there are " + options.length + ").";
      } else if (options.some(function (option) { return option.length > 200; })) {
        optionProblem = "Each option has at most 200 characters.";
      }
      check(optionsInput, optionProblem);
      config = { options: options, multiple: pushField("multiple").checked };
    } else if (kind === "offer") {
      var headline = pushField("offer_title");
      title = headline.value.trim();
      check(headline, title ? "" : "Write a headline.");
      var text = pushField("offer_text");
      check(text, "");
      var buttonLabel = pushField("offer_button");
      check(buttonLabel, buttonLabel.value.trim() ? "" : "Write the button's label.");
      var url = pushField("offer_url");
      var urlProblem = "";
      var raw = url.value.trim();
      if (!raw) {
        urlProblem = "Give the address the button opens.";
      } else {
        try {
          var parsed = new URL(raw);
          if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
            urlProblem = "The address starts with https:// (or http://).";
          }
        } catch (ignored) {
          urlProblem = "This is not a web address; it starts with https://.";
        }
      }
      check(url, urlProblem);
      var countdown = pushField("offer_countdown");
      var seconds = countdown.value.trim();
      var countdownProblem = "";
      if (seconds && (!/^\d+$/.test(seconds) || parseInt(seconds, 10) < 1 || parseInt(seconds, 10) > 86400)) {
        countdownProblem = "A whole number of seconds from 1 to 86400, or empty.";
      }
      check(countdown, countdownProblem);
      config = { text: text.value.trim(), button: buttonLabel.value.trim(), url: raw };
      if (seconds && !countdownProblem) {
        config.countdown_seconds = parseInt(seconds, 10);
      }
    } else {
      var announcement = pushField("announcement_text");
      var words = announcement.value.trim();
      check(announcement, words ? "" : "Write the announcement.");
      title = words;
      config = { text: words };
    }
    return { problems: problems, payload: { kind: kind, title: title, config: config } };
  }

  if (nodes.pushForm) {
    showPushFields();
    nodes.pushForm.querySelector("[data-push-kind]").addEventListener("change", showPushFields);
    nodes.pushForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var status = nodes.pushForm.querySelector("[data-push-status]");
      var formError = nodes.pushForm.querySelector("[data-push-error]");
      var send = nodes.pushForm.querySelector("[data-push-send]");
      status.textContent = "";
      formError.hidden = true;
      var read = readPush();
      if (read.problems.length) {
        read.problems[0].focus();
        return;
      }
      if (!state.open) {
        formError.textContent = "Open a session first.";
        formError.hidden = false;
        return;
      }
      var sessionId = state.open.id;
      var payload = Object.assign({ session_id: sessionId }, read.payload);
      send.disabled = true;
      call(EV.PUSH, payload, function (response) {
        send.disabled = false;
        if (!response.ok) {
          formError.textContent = response.error.message;
          formError.hidden = false;
          return;
        }
        status.textContent = read.payload.kind === "announcement" ? "Announced." : "Pushed to the session.";
        var interaction = response.interaction;
        if (interaction && typeof interaction.id === "number" && state.open && state.open.id === sessionId) {
          state.open.timeline.set(interaction.id, interaction);
          renderResults();
        }
        // The same kind is often pushed again: the form keeps its kind, the texts are cleared.
        Array.prototype.forEach.call(nodes.pushForm.querySelectorAll('[data-push-fields="' + read.payload.kind + '"] input, [data-push-fields="' + read.payload.kind + '"] textarea'), function (input) {
          if (input.type === "checkbox") {
            input.checked = false;
          } else {
            input.value = "";
          }
        });
      });
    });
  }

  // --- Alerts: unread in the title, a sound and a desktop notification ------------------------

  function pageVisible() {
    return document.visibilityState === "visible";
  }

  document.addEventListener("visibilitychange", function () {
    if (pageVisible() && state.open) {
      markRead(state.open.id);
    }
  });

  var SOUND_KEY = "encore.console.sound";
  try {
    if (window.localStorage.getItem(SOUND_KEY) === "off") {
      nodes.sound.checked = false;
    }
  } catch (ignored) {
    // Storage may be blocked; the box then starts checked.
  }
  nodes.sound.addEventListener("change", function () {
    try {
      window.localStorage.setItem(SOUND_KEY, nodes.sound.checked ? "on" : "off");
    } catch (ignored) {
      // Not remembered, but still in effect for this page.
    }
  });

  var audio = null;
  function wakeAudio() {
    // Browsers let a page start sound only after the person interacted with it.
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) {
      return;
    }
    if (!audio) {
      audio = new Context();
    }
    if (audio.state === "suspended") {
      audio.resume();
    }
  }
  document.addEventListener("pointerdown", wakeAudio);
  document.addEventListener("keydown", wakeAudio);

  function chime() {
    if (!nodes.sound.checked || !audio || audio.state !== "running") {
      return;
    }
    var start = audio.currentTime;
    [660, 990].forEach(function (frequency, index) {
      var oscillator = audio.createOscillator();
      var gain = audio.createGain();
      var at = start + index * 0.12;
      oscillator.type = "sine";
      oscillator.frequency.setValueAtTime(frequency, at);
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.25);
      oscillator.connect(gain);
      gain.connect(audio.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.3);
    });
  }

  function notificationsSupported() {
    return "Notification" in window;
  }

  function renderNotifyState() {
    if (!notificationsSupported()) {
      nodes.notify.hidden = true;
      nodes.notifyState.textContent = "";
      return;
    }
    var permission = window.Notification.permission;
    nodes.notify.hidden = permission !== "default";
    nodes.notifyState.textContent = permission === "granted"
      ? "Desktop notifications are on."
      : permission === "denied" ? "Desktop notifications are blocked in this browser's site settings." : "";
  }

  nodes.notify.addEventListener("click", function () {
    wakeAudio();
    var asked = window.Notification.requestPermission(renderNotifyState);
    if (asked && typeof asked.then === "function") {
      asked.then(renderNotifyState);
    }
  });
  renderNotifyState();

  function alertNew(items) {
    chime();
    if (!notificationsSupported() || window.Notification.permission !== "granted") {
      return;
    }
    var latest = items[items.length - 1];
    var title = items.length === 1
      ? latest.name + " · " + (webinarOf(latest) || "Webinar")
      : items.length + " new messages";
    var body = items.length === 1 ? snippet(latest.body, 140) : "Latest from " + latest.name + ": " + snippet(latest.body, 100);
    try {
      var note = new window.Notification(title, { body: body, tag: "encore-console" });
      note.onclick = function () {
        window.focus();
        openSession(latest.session_id, canAct && typeof latest.registrant_id === "number"
          ? { registrant_id: latest.registrant_id, name: latest.name, reply_to: latest.id, quote: latest.body }
          : null, webinarOf(latest));
        note.close();
      };
    } catch (ignored) {
      // Some browsers only show notifications from a service worker; the sound and title remain.
    }
  }
})();
