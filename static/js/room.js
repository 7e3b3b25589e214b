// The attendee's live room: one Socket.IO connection (the join token from the URL is the only
// key), a player on hls.js held to the session's shared clock, timed interactions and the chat.
//
// Modes come from the server (RoomPayload.session.mode) and change here by the clock:
// - waiting: a countdown; at the start the room turns live by itself.
// - live: everyone is at (server now - start). Pausing is allowed, but playing again returns to
//   the live position; seeking ahead of it snaps back; "Back to live" appears when behind.
// - on_demand: nothing plays until the attendee presses play. Each play (the first one, a resume
//   after a pause, a reconnect) tells the server where the player is (START), and the server's
//   clock for this attendee runs from there, so pausing is allowed but seeking ahead is not.
// - replay: free seeking; public chat and interactions appear at their moments in the video.
// - ended: the end screen.
// The server's clock is estimated with a few SYNC round trips (the fastest one counts). An open,
// unanswered required interaction pauses the video until it is answered. Every text from the
// wire is set with textContent: nothing from it is parsed as HTML.
(function () {
  "use strict";
  var root = document.querySelector("[data-room]");
  if (!root) {
    return;
  }

  // The event names of the live room's protocol (app/realtime/protocol.py).
  var EVENTS = {
    ROOM: "room",
    CHAT: "chat",
    CHAT_REMOVED: "chat:removed",
    INTERACTION: "interaction",
    RESULTS: "results",
    ANNOUNCEMENT: "announcement",
    TEAM: "team",
    RESTRICTED: "restricted",
    SYNC: "sync",
    CHAT_SEND: "chat:send",
    ANSWER: "answer",
    CLICK: "click",
    HEARTBEAT: "heartbeat",
    START: "start"
  };
  var ANSWERABLE = { poll: true, quiz: true, nps: true, rating: true, question: true };
  var CLICKABLE = { offer: true, download: true, link: true };
  var ACK_TIMEOUT_MS = 10000;
  // Clock rounds: up to five, 200 ms apart, until one comes back within SYNC_GOOD_RTT_MS. The
  // server's clock is then known to half of that, well inside what the room needs (the
  // player is corrected past two seconds, an interaction shows on a 250 ms tick).
  var SYNC_ROUNDS = 5;
  var SYNC_GOOD_RTT_MS = 100;
  var RESYNC_MS = 10 * 60 * 1000;
  // How far a player may be from the live position before it counts as ahead or behind.
  var AHEAD_SECONDS = 2;
  var BEHIND_SECONDS = 3;

  function readJson(name) {
    try {
      return JSON.parse(root.getAttribute(name) || "{}") || {};
    } catch (error) {
      return {};
    }
  }
  var labels = readJson("data-labels");
  var config = readJson("data-config");
  var lang = document.documentElement.lang || "en";
  var token = decodeURIComponent(window.location.pathname.split("/")[2] || "");
  var maxChat = config.max_chat_chars || 1000;

  function find(selector) {
    return document.querySelector(selector);
  }
  var ui = {
    status: find("[data-room-status]"),
    screen: find("[data-room-screen]"),
    notice: find("[data-room-notice]"),
    cards: find("[data-room-interactions]"),
    cardsLive: find("[data-interaction-live]"),
    banner: find("[data-room-announcement]"),
    bannerText: find("[data-announcement-text]"),
    bannerDismiss: find("[data-announcement-dismiss]"),
    chat: find("[data-room-chat]"),
    chatMode: find("[data-chat-mode]"),
    chatTeam: find("[data-chat-team]"),
    chatWelcome: find("[data-chat-welcome]"),
    pinned: find("[data-chat-pinned]"),
    list: find("[data-chat-list]"),
    chatLive: find("[data-chat-live]"),
    form: find("[data-chat-form]"),
    body: find("[data-chat-body]"),
    chatError: find("[data-chat-error]"),
    chatNote: find("[data-chat-note]"),
    send: find("[data-chat-send]")
  };
  var sendLabel = ui.send ? ui.send.textContent : "";

  // --- small helpers ---------------------------------------------------------------------------

  function t(key, values) {
    var text = Object.prototype.hasOwnProperty.call(labels, key) ? String(labels[key]) : key;
    if (values) {
      Object.keys(values).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(values[name]));
      });
    }
    return text;
  }

  function number(value, digits) {
    try {
      return new Intl.NumberFormat(lang, { maximumFractionDigits: digits || 0 }).format(value);
    } catch (error) {
      return String(Math.round(value));
    }
  }

  function counted(base, count) {
    var rule = count === 1 ? "one" : "other";
    try {
      rule = new Intl.PluralRules(lang).select(count);
    } catch (error) {
      // Older browsers: the English rule above.
    }
    var key = Object.prototype.hasOwnProperty.call(labels, base + "_" + rule) ? base + "_" + rule : base + "_other";
    return t(key, { count: number(count) });
  }

  function percent(part, whole) {
    var share = whole > 0 ? part / whole : 0;
    try {
      return new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 0 }).format(share);
    } catch (error) {
      return Math.round(share * 100) + "%";
    }
  }

  function unit(name, value) {
    try {
      return new Intl.NumberFormat(lang, { style: "unit", unit: name, unitDisplay: "long" }).format(value);
    } catch (error) {
      return value + " " + name + (value === 1 ? "" : "s");
    }
  }

  function fileSize(bytes) {
    if (typeof bytes !== "number" || !isFinite(bytes) || bytes <= 0) {
      return typeof bytes === "string" ? bytes : "";
    }
    var names = ["byte", "kilobyte", "megabyte", "gigabyte"];
    var index = 0;
    while (bytes >= 1000 && index < names.length - 1) {
      bytes /= 1000;
      index += 1;
    }
    try {
      return new Intl.NumberFormat(lang, { style: "unit", unit: names[index], unitDisplay: "short", maximumFractionDigits: 1 }).format(bytes);
    } catch (error) {
      return Math.round(bytes * 10) / 10 + " " + ["B", "kB", "MB", "GB"][index];
    }
  }

  function clockText(seconds) {
    seconds = Math.max(0, Math.ceil(seconds));
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var rest = seconds % 60;
    var text = (hours ? hours + ":" + (minutes < 10 ? "0" : "") : "") + minutes + ":" + (rest < 10 ? "0" : "") + rest;
    return text;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function button(className, text) {
    var node = el("button", className, text);
    node.type = "button";
    return node;
  }

  function clear(node) {
    while (node && node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  // Only web addresses (or paths on this site) become links.
  function safeUrl(value) {
    if (typeof value !== "string" || !value) {
      return null;
    }
    try {
      var url = new URL(value, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function newTabLink(className, text, href) {
    var link = el("a", className, text);
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.appendChild(el("span", "sr-only", " " + t("new_tab")));
    return link;
  }

  function setStatus(text) {
    if (ui.status) {
      ui.status.textContent = text || "";
      ui.status.hidden = !text;
    }
  }

  // --- state -----------------------------------------------------------------------------------

  var room = null; // the last RoomPayload
  var mode = null;
  var settings = {};
  var stopped = false; // refused or removed: the room shows a message and does nothing more
  var muted = false;
  var teamOnline = false;
  var timeline = {}; // interaction id -> InteractionItem
  var answered = {}; // interaction id -> the attendee's answer
  var results = {}; // interaction id -> results
  var cards = {}; // interaction id -> the card on the page
  var messages = {}; // chat message id -> ChatItem
  // Ids of this attendee's own messages: a message made public no longer names its writer.
  var own = {};
  var chatShown = ""; // which messages the list shows, to redraw replays only when it changes
  var player = null;
  var onDemandStartedMs = null;
  var lastReconnect = 0;
  var reloadPlanned = false;
  var sending = false; // a chat message is on its way

  // --- clock -----------------------------------------------------------------------------------

  var clock = { offset: 0, bestRtt: Infinity };

  function serverNow() {
    return Date.now() + clock.offset;
  }

  function syncClock(rounds) {
    var left = rounds;
    function once() {
      if (!socket.connected || left <= 0) {
        return;
      }
      left -= 1;
      var sent = Date.now();
      socket.timeout(ACK_TIMEOUT_MS).emit(EVENTS.SYNC, {}, function (error, ack) {
        var now = Date.now();
        if (!error && ack && ack.ok && typeof ack.server_ms === "number") {
          // The round trip with the least delay says the most about where the server's clock is.
          var rtt = now - sent;
          if (rtt <= clock.bestRtt) {
            clock.bestRtt = rtt;
            clock.offset = ack.server_ms + rtt / 2 - now;
          }
          if (rtt <= SYNC_GOOD_RTT_MS) {
            return; // close enough: no more rounds
          }
        }
        if (left > 0) {
          window.setTimeout(once, 200);
        }
      });
    }
    once();
  }

  // --- connection ------------------------------------------------------------------------------

  if (typeof window.io !== "function" || !token) {
    fatal(t("error_generic"));
    return;
  }
  var socket = window.io({
    path: config.socket_path || "/socket.io",
    transports: ["websocket"],
    auth: { token: token }
  });

  socket.on("connect", function () {
    // A fresh measurement after every (re)connect: the device's clock may have been changed.
    clock.bestRtt = Infinity;
    syncClock(SYNC_ROUNDS);
  });

  socket.on("disconnect", function (reason) {
    if (stopped) {
      return;
    }
    setStatus(t("reconnecting"));
    if (reason === "io server disconnect") {
      // The server closed this connection: the client does not retry on its own then.
      window.setTimeout(function () {
        if (!stopped) {
          socket.connect();
        }
      }, 2000);
    }
  });

  socket.on("connect_error", function (error) {
    if (socket.active) {
      setStatus(t("reconnecting")); // a network problem: the client tries again by itself
      return;
    }
    var code = error && error.data && error.data.code;
    var known = { unknown_link: "error_unknown_link", no_session: "error_no_session", banned: "error_banned" };
    fatal(known[code] ? t(known[code]) : t("error_generic"));
  });

  window.setInterval(function () {
    if (socket.connected) {
      syncClock(2);
    }
  }, RESYNC_MS);

  function fatal(text) {
    stopped = true;
    destroyPlayer();
    if (typeof socket !== "undefined" && socket) {
      socket.disconnect();
    }
    setStatus("");
    clear(ui.screen);
    var card = el("div", "room-message card");
    var message = el("p", "state", text);
    message.setAttribute("role", "alert");
    card.appendChild(message);
    ui.screen.appendChild(card);
    [ui.chat, ui.cards, ui.notice, ui.banner].forEach(function (node) {
      if (node) {
        node.hidden = true;
      }
    });
    root.classList.remove("room-has-chat");
  }

  // --- the room as the server describes it -----------------------------------------------------

  socket.on(EVENTS.ROOM, function (payload) {
    if (stopped || !payload || !payload.session) {
      return;
    }
    if (clock.bestRtt === Infinity && typeof payload.server_ms === "number") {
      clock.offset = payload.server_ms - Date.now();
    }
    room = payload;
    settings = payload.settings || {};
    timeline = {};
    (payload.timeline || []).forEach(function (item) {
      timeline[item.id] = item;
    });
    answered = {};
    Object.keys(payload.answered || {}).forEach(function (key) {
      answered[key] = payload.answered[key];
    });
    results = {};
    (payload.results || []).forEach(function (entry) {
      results[entry.interaction_id] = entry.results;
    });
    messages = {};
    (payload.chat || []).forEach(function (message) {
      messages[message.id] = message;
    });
    teamOnline = Boolean(payload.team_online);
    muted = Boolean(payload.muted);
    setStatus("");
    renderChatChrome();
    enterMode(payload.session.mode, payload.position);
    Object.keys(cards).forEach(function (id) {
      if (!timeline[id]) {
        removeCard(id);
      } else {
        cards[id].item = timeline[id];
        renderCard(cards[id]);
      }
    });
    chatShown = "";
    renderChat([]);
    tick();
  });

  function duration() {
    return room && room.session && typeof room.session.duration === "number" ? room.session.duration : Infinity;
  }

  function enterMode(next, position) {
    var previous = mode;
    mode = next;
    root.setAttribute("data-mode", next);
    renderNotice();
    var message = find("[data-room-message]");
    if (message) {
      message.parentNode.removeChild(message);
    }
    var waiting = find("[data-room-waiting]");
    var fallback = find("[data-room-fallback]");
    if (fallback) {
      fallback.hidden = true;
    }
    if (next === "waiting") {
      destroyPlayer();
      removeEnd();
      showWaiting();
      return;
    }
    if (waiting) {
      waiting.hidden = true;
    }
    if (next === "live" || next === "replay" || next === "on_demand") {
      removeEnd();
      if (!room.hls_url) {
        destroyPlayer();
        showMessage(t("no_video"));
        return;
      }
      if (player && player.url === room.hls_url && player.mode === next && previous === next) {
        if (next === "on_demand" && player.started) {
          startOnDemand(); // a new connection: the server's clock for this attendee starts again
        }
        return;
      }
      var start = next === "live" ? liveEdge() : position || 0;
      buildPlayer(next, room.hls_url, Math.max(0, Math.min(start || 0, duration())));
      return;
    }
    showEnd(false);
  }

  function showMessage(text) {
    var existing = find("[data-room-message]");
    if (existing) {
      existing.parentNode.removeChild(existing);
    }
    var card = el("div", "room-message card");
    card.setAttribute("data-room-message", "");
    card.appendChild(el("p", "state", text));
    ui.screen.appendChild(card);
  }

  // --- waiting room ----------------------------------------------------------------------------

  function showWaiting() {
    var waiting = find("[data-room-waiting]");
    if (!waiting) {
      // Rendered as another state (the clocks disagreed by a moment): a plain countdown.
      waiting = el("div", "room-waiting card");
      waiting.setAttribute("data-room-waiting", "");
      var countdown = el("p", "countdown");
      countdown.setAttribute("data-countdown", "");
      countdown.setAttribute("role", "timer");
      countdown.setAttribute("aria-live", "off");
      countdown.setAttribute("data-template", t("starts_in"));
      countdown.setAttribute("data-started-text", t("started"));
      waiting.appendChild(countdown);
      ui.screen.appendChild(waiting);
    }
    waiting.hidden = false;
    var welcome = waiting.querySelector("[data-room-welcome]");
    if (welcome) {
      // The chat shows the welcome when there is one; otherwise the waiting room does.
      var text = settings.chat_enabled === false ? settings.welcome || "" : "";
      welcome.textContent = text;
      welcome.hidden = !text;
    }
    renderCountdown();
  }

  function startsAtMs() {
    if (room && room.session && typeof room.session.starts_at_ms === "number") {
      return room.session.starts_at_ms;
    }
    var element = find("[data-countdown]");
    var parsed = element ? Date.parse(element.getAttribute("data-starts-at") || "") : NaN;
    return isNaN(parsed) ? null : parsed;
  }

  function renderCountdown() {
    var element = find("[data-countdown]");
    var start = startsAtMs();
    if (!element || start === null) {
      return;
    }
    var now = room ? serverNow() : Date.now();
    var left = Math.floor((start - now) / 1000);
    if (left <= 0) {
      element.textContent = element.getAttribute("data-started-text") || t("started");
      return;
    }
    var days = Math.floor(left / 86400);
    var hours = Math.floor((left % 86400) / 3600);
    var minutes = Math.floor((left % 3600) / 60);
    var parts = [];
    if (days) {
      parts.push(unit("day", days));
    }
    if (days || hours) {
      parts.push(unit("hour", hours));
    }
    if (days || hours || minutes) {
      parts.push(unit("minute", minutes));
    }
    if (!days) {
      parts.push(unit("second", left % 60));
    }
    var template = element.getAttribute("data-template") || t("starts_in");
    element.textContent = template.replace("{time}", parts.join(" "));
    element.classList.add("countdown-live");
  }

  function waitingTick() {
    renderCountdown();
    var start = startsAtMs();
    if (start === null) {
      return;
    }
    if (!room) {
      // Never connected: a reload at the start is the best the page can still do.
      var element = find("[data-countdown]");
      if (!stopped && !reloadPlanned && Date.now() >= start && element && element.hasAttribute("data-reload-at-start")) {
        reloadPlanned = true;
        window.setTimeout(function () {
          if (!room && !stopped) {
            window.location.reload();
          }
        }, 1500);
      }
      return;
    }
    if (mode === "waiting" && serverNow() >= start) {
      if (room.hls_url) {
        room.session.mode = "live";
        enterMode("live", 0);
      } else if (Date.now() - lastReconnect > 30000) {
        // No video in the waiting room's description: ask for the room again.
        lastReconnect = Date.now();
        socket.disconnect();
        socket.connect();
      }
    }
  }

  // --- the player ------------------------------------------------------------------------------

  function liveEdge() {
    if (!room) {
      return null;
    }
    if (mode === "live" && typeof room.session.starts_at_ms === "number") {
      return (serverNow() - room.session.starts_at_ms) / 1000;
    }
    if (mode === "on_demand" && onDemandStartedMs !== null) {
      return (serverNow() - onDemandStartedMs) / 1000;
    }
    return null;
  }

  // Seconds into the video that interactions and replayed chat follow; null when none applies.
  function mediaTime() {
    if (!room) {
      return null;
    }
    if (mode === "live") {
      return Math.max(0, Math.min(liveEdge(), duration()));
    }
    if (!player) {
      return null;
    }
    if (mode === "on_demand" && !player.started) {
      return null;
    }
    return player.video.currentTime || 0;
  }

  function isPlaying() {
    return Boolean(player && !player.video.paused && !player.video.ended);
  }

  function destroyPlayer() {
    if (!player) {
      return;
    }
    if (player.hls) {
      player.hls.destroy();
    }
    player.video.pause();
    player.video.removeAttribute("src");
    if (player.box.parentNode) {
      player.box.parentNode.removeChild(player.box);
    }
    player = null;
  }

  function buildPlayer(playerMode, url, startAt) {
    destroyPlayer();
    var shared = playerMode === "live" || playerMode === "on_demand";
    var box = el("div", "room-player");
    box.setAttribute("data-room-player", playerMode);
    var frame = el("div", "room-frame");
    var video = document.createElement("video");
    video.setAttribute("playsinline", "");
    video.setAttribute("aria-label", t("video_label"));
    video.preload = "auto";
    video.controls = !shared;
    if (room.poster_url && safeUrl(room.poster_url)) {
      video.poster = room.poster_url;
    }
    frame.appendChild(video);
    var overlay = el("div", "room-overlay");
    var bigPlay = button("btn btn-primary room-big-play", t("play"));
    bigPlay.hidden = true;
    var sound = button("btn btn-primary room-sound", t("sound_on"));
    sound.hidden = true;
    var hold = el("p", "room-hold", t("required"));
    hold.hidden = true;
    overlay.appendChild(bigPlay);
    overlay.appendChild(sound);
    overlay.appendChild(hold);
    frame.appendChild(overlay);
    box.appendChild(frame);
    var problem = el("p", "room-player-error");
    problem.setAttribute("role", "alert");
    problem.hidden = true;

    var p = {
      mode: playerMode,
      url: url,
      box: box,
      video: video,
      hls: null,
      bigPlay: bigPlay,
      sound: sound,
      hold: hold,
      problem: problem,
      started: false,
      holding: null,
      snapOnPlaying: playerMode === "live",
      retries: 0
    };

    if (shared) {
      var bar = el("div", "room-controls");
      p.toggle = button("btn btn-secondary", t("pause"));
      p.mute = button("btn btn-secondary", t("mute"));
      bar.appendChild(p.toggle);
      bar.appendChild(p.mute);
      if (playerMode === "live") {
        bar.appendChild(el("span", "room-live-badge", t("live")));
        p.back = button("btn btn-secondary room-back", t("back_to_live"));
        p.back.hidden = true;
        bar.appendChild(p.back);
        p.back.addEventListener("click", function () {
          var edge = liveEdge();
          if (edge !== null) {
            video.currentTime = Math.min(edge, duration());
          }
          play(true);
        });
      }
      if (box.requestFullscreen || video.webkitEnterFullscreen) {
        p.fullscreen = button("btn btn-secondary room-fullscreen", t("fullscreen"));
        bar.appendChild(p.fullscreen);
        p.fullscreen.addEventListener("click", function () {
          if (document.fullscreenElement) {
            document.exitFullscreen();
          } else if (box.requestFullscreen) {
            box.requestFullscreen();
          } else {
            video.webkitEnterFullscreen();
          }
        });
      }
      box.appendChild(bar);
      p.toggle.addEventListener("click", function () {
        if (video.paused) {
          play(true);
        } else {
          video.pause();
        }
      });
      p.mute.addEventListener("click", function () {
        video.muted = !video.muted;
        sound.hidden = true;
      });
    }
    box.appendChild(problem);

    function controlsLabels() {
      if (p.toggle) {
        p.toggle.textContent = video.paused ? t("play") : t("pause");
      }
      if (p.mute) {
        p.mute.textContent = video.muted ? t("unmute") : t("mute");
      }
      if (!video.muted) {
        sound.hidden = true;
      }
    }

    bigPlay.addEventListener("click", function () {
      play(true);
    });
    sound.addEventListener("click", function () {
      video.muted = false;
      sound.hidden = true;
      if (video.paused) {
        play(true);
      }
    });

    video.addEventListener("play", function () {
      if (p.holding !== null) {
        video.pause(); // a required interaction waits for its answer
        return;
      }
      p.started = true;
      bigPlay.hidden = true;
      if (p.mode === "live") {
        // Playing again after a pause goes back to where everyone is.
        var edge = liveEdge();
        if (edge !== null && video.readyState > 0 && Math.abs(video.currentTime - edge) > 1) {
          video.currentTime = Math.min(edge, duration());
        }
        p.snapOnPlaying = true;
      } else if (p.mode === "on_demand") {
        startOnDemand();
      }
      controlsLabels();
    });
    video.addEventListener("playing", function () {
      var edge = liveEdge();
      if (p.mode === "live" && p.snapOnPlaying && edge !== null && Math.abs(video.currentTime - edge) > 1) {
        video.currentTime = Math.min(edge, duration());
      }
      p.snapOnPlaying = false;
    });
    video.addEventListener("pause", controlsLabels);
    video.addEventListener("volumechange", controlsLabels);
    video.addEventListener("seeking", function () {
      keepBehindEdge(p);
    });
    video.addEventListener("ended", function () {
      if (player === p) {
        showEnd(p.mode === "live");
      }
    });

    function fail(text) {
      problem.textContent = text;
      problem.hidden = false;
      video.setAttribute("data-player-error", text);
    }

    var Hls = window.Hls;
    if (Hls && Hls.isSupported()) {
      // No worker: the CSP allows no blob: scripts, and parsing on the page is fast enough here.
      var hls = new Hls({ enableWorker: false, startPosition: startAt });
      hls.on(Hls.Events.ERROR, function (event, data) {
        if (!data.fatal) {
          return;
        }
        p.retries += 1;
        if (p.retries <= 3 && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
          hls.startLoad();
        } else if (p.retries <= 3 && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else {
          fail(t("video_error"));
        }
      });
      hls.on(Hls.Events.MANIFEST_PARSED, function () {
        p.retries = 0;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      p.hls = hls;
      video.setAttribute("data-player", "hls.js");
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url;
      video.addEventListener("loadedmetadata", function once() {
        video.removeEventListener("loadedmetadata", once);
        var target = p.mode === "live" ? liveEdge() : startAt;
        video.currentTime = Math.max(0, Math.min(target || 0, duration()));
      });
      video.setAttribute("data-player", "native");
    } else {
      fail(t("no_hls"));
    }

    ui.screen.appendChild(box);
    player = p;
    controlsLabels();

    if (playerMode === "live") {
      autoplay(p);
    } else {
      bigPlay.textContent = startAt > 0 ? t("continue_watching") : t("start_watching");
      bigPlay.hidden = false;
    }
  }

  // Browsers allow sound only after the visitor has done something on the page: until then
  // the live room starts muted with a "Click for sound" button, or shows a Play button.
  function autoplay(p) {
    var activated = navigator.userActivation ? navigator.userActivation.hasBeenActive : false;
    p.video.muted = !activated;
    var attempt = p.video.play();
    if (!attempt || !attempt.then) {
      return;
    }
    attempt.then(function () {
      p.sound.hidden = !p.video.muted || p.holding !== null;
    }, function () {
      if (player !== p || p.holding !== null) {
        return;
      }
      p.video.muted = true;
      p.video.play().then(function () {
        p.sound.hidden = false;
      }, function () {
        if (player === p && p.holding === null) {
          p.bigPlay.textContent = t("play");
          p.bigPlay.hidden = false;
        }
      });
    });
  }

  function play(withSound) {
    if (!player) {
      return;
    }
    if (withSound) {
      player.video.muted = false;
    }
    var attempt = player.video.play();
    if (attempt && attempt.catch) {
      attempt.catch(function () {
        // Refused (no user gesture, or interrupted by a pause): the Play button stays.
        if (player && player.video.paused && player.holding === null) {
          player.bigPlay.hidden = false;
        }
      });
    }
  }

  function keepBehindEdge(p) {
    var edge = liveEdge();
    if (edge === null || p.mode === "replay") {
      return;
    }
    if (p.video.currentTime > edge + AHEAD_SECONDS) {
      p.video.currentTime = Math.max(0, Math.min(edge, duration()));
    }
  }

  function startOnDemand() {
    if (!player || mode !== "on_demand") {
      return;
    }
    var position = player.video.currentTime || 0;
    onDemandStartedMs = serverNow() - position * 1000;
    if (!socket.connected) {
      return; // sent again with the next connection's ROOM
    }
    socket.timeout(ACK_TIMEOUT_MS).emit(EVENTS.START, { position: position }, function (error, ack) {
      if (!error && ack && ack.ok && typeof ack.started_ms === "number") {
        onDemandStartedMs = ack.started_ms;
      }
    });
  }

  function playerTick() {
    if (!player) {
      return;
    }
    var p = player;
    var edge = liveEdge();
    if (p.mode === "live") {
      keepBehindEdge(p);
      if (p.back) {
        p.back.hidden = !(edge !== null && isPlaying() && p.video.currentTime < edge - BEHIND_SECONDS);
      }
    } else if (p.mode === "on_demand") {
      keepBehindEdge(p);
      if (isPlaying() && edge !== null && p.video.currentTime < edge - BEHIND_SECONDS) {
        startOnDemand(); // it stalled: the clock follows the player, not the other way round
      }
    }
  }

  // A required interaction that is open and not answered stops the video until it is.
  function holdForRequired(p) {
    if (p.mode === "replay") {
      return;
    }
    var time = mediaTime();
    var waitingFor = null;
    Object.keys(cards).forEach(function (id) {
      var item = cards[id].item;
      if (item.required && ANSWERABLE[item.kind] && !hasAnswered(id) && isOpen(item, time)) {
        waitingFor = id;
      }
    });
    if (waitingFor !== null && p.holding === null) {
      p.holding = waitingFor;
      p.hold.hidden = false;
      p.bigPlay.hidden = true;
      p.sound.hidden = true;
      p.video.pause();
      var card = cards[waitingFor];
      var active = document.activeElement;
      var typing = active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT");
      if (card && !typing) {
        card.node.focus();
      }
    } else if (waitingFor === null && p.holding !== null) {
      p.holding = null;
      p.hold.hidden = true;
      play(false);
    }
  }

  // --- end screen ------------------------------------------------------------------------------

  function removeEnd() {
    var end = find("[data-room-end]");
    if (end) {
      end.parentNode.removeChild(end);
    }
  }

  function showEnd(fromLive) {
    destroyPlayer();
    removeEnd();
    mode = "ended";
    root.setAttribute("data-mode", "ended");
    var waiting = find("[data-room-waiting]");
    if (waiting) {
      waiting.hidden = true;
    }
    var end = el("div", "room-end card");
    end.setAttribute("data-room-end", "");
    end.appendChild(el("h2", "room-end-title", settings.end_title || t("ended")));
    if (settings.end_text) {
      end.appendChild(el("p", "room-end-text", settings.end_text));
    }
    var actions = el("div", "room-end-actions");
    var href = safeUrl(settings.end_url);
    if (settings.end_button && href) {
      actions.appendChild(newTabLink("btn btn-primary", settings.end_button, href));
    }
    var replayUntil = room && room.session ? room.session.replay_until_ms : null;
    if (fromLive && room && room.hls_url && typeof replayUntil === "number" && serverNow() < replayUntil) {
      var replay = button("btn btn-secondary", t("watch_replay"));
      replay.addEventListener("click", function () {
        room.session.mode = "replay";
        enterMode("replay", 0);
        tick();
      });
      actions.appendChild(replay);
    }
    if (actions.firstChild) {
      end.appendChild(actions);
    }
    ui.screen.appendChild(end);
    setStatus("");
    renderNotice();
    updateCards();
  }

  // --- notice and announcements ----------------------------------------------------------------

  function renderNotice() {
    if (!ui.notice) {
      return;
    }
    // The notice speaks of the running presentation: the end screen goes without it.
    var text = settings.show_notice && mode !== "ended" ? settings.notice || "" : "";
    ui.notice.textContent = text;
    ui.notice.hidden = !text;
  }

  socket.on(EVENTS.ANNOUNCEMENT, function (payload) {
    if (stopped || !payload || !payload.text || !ui.banner) {
      return;
    }
    ui.bannerText.textContent = payload.text;
    ui.banner.hidden = false;
  });
  if (ui.bannerDismiss) {
    ui.bannerDismiss.addEventListener("click", function () {
      ui.banner.hidden = true;
    });
  }

  // --- interactions ----------------------------------------------------------------------------

  function hasAnswered(id) {
    return Object.prototype.hasOwnProperty.call(answered, String(id));
  }

  function isOpen(item, time) {
    if (time === null || time === undefined) {
      return false;
    }
    return time >= item.opens_at && (item.closes_at === null || item.closes_at === undefined || time < item.closes_at);
  }

  function optionText(option) {
    if (typeof option === "string") {
      return option;
    }
    return option && (option.text || option.label) ? String(option.text || option.label) : "";
  }

  function asList(value) {
    if (Array.isArray(value)) {
      return value;
    }
    return typeof value === "number" ? [value] : [];
  }

  function updateCards() {
    var time = mode === "ended" || mode === "waiting" ? null : mediaTime();
    var ids = Object.keys(timeline).sort(function (a, b) {
      return timeline[a].opens_at - timeline[b].opens_at || a - b;
    });
    ids.forEach(function (id) {
      var item = timeline[id];
      var open = isOpen(item, time);
      if (open && !cards[id]) {
        var card = buildCard(item);
        cards[id] = card;
        // Newest first: the card that just opened is the one to look at.
        ui.cards.insertBefore(card.node, ui.cards.firstChild);
        if (time - item.opens_at < 5 && ui.cardsLive) {
          ui.cardsLive.textContent = t("new_interaction", { title: item.title });
        }
      } else if (!open && cards[id]) {
        removeCard(id);
      }
      if (cards[id]) {
        cardTick(cards[id], time);
      }
    });
    ui.cards.hidden = !ui.cards.firstChild;
    scheduleNextMoment(time);
  }

  // The periodic tick is 250 ms; an interaction should appear at its moment, so a timer is set
  // for the next opening or closing in the video as well.
  var momentTimer = null;
  function scheduleNextMoment(time) {
    if (momentTimer !== null) {
      window.clearTimeout(momentTimer);
      momentTimer = null;
    }
    if (time === null || (player && player.paused && mode !== "live")) {
      return;
    }
    var next = Infinity;
    Object.keys(timeline).forEach(function (id) {
      var item = timeline[id];
      [item.opens_at, item.closes_at].forEach(function (moment) {
        if (typeof moment === "number" && moment > time && moment < next) {
          next = moment;
        }
      });
    });
    var rate = player && player.playbackRate > 0 ? player.playbackRate : 1;
    var delay = ((next - time) / rate) * 1000;
    if (delay < 1000) {
      momentTimer = window.setTimeout(function () {
        momentTimer = null;
        updateCards();
      }, Math.max(delay, 0) + 5);
    }
  }

  function removeCard(id) {
    var card = cards[id];
    if (card && card.node.parentNode) {
      card.node.parentNode.removeChild(card.node);
    }
    delete cards[id];
  }

  function buildCard(item) {
    var node = el("article", "room-card room-card-" + String(item.kind).replace(/[^a-z_]/g, ""));
    node.setAttribute("tabindex", "-1");
    node.setAttribute("data-interaction", String(item.id));
    var titleId = "interaction-" + item.id + "-title";
    node.setAttribute("aria-labelledby", titleId);
    if (Object.prototype.hasOwnProperty.call(labels, "kind_" + item.kind)) {
      node.appendChild(el("p", "room-card-kind", t("kind_" + item.kind)));
    }
    var title = el("h3", "room-card-title", item.title);
    title.id = titleId;
    node.appendChild(title);
    var body = el("div", "room-card-body");
    node.appendChild(body);
    var card = { item: item, node: node, body: body, shown: "" };
    renderCard(card);
    return card;
  }

  // Draws a card again only when what it shows changed (a form being filled in is kept).
  function renderCard(card) {
    var item = card.item;
    var id = String(item.id);
    var state;
    if (!ANSWERABLE[item.kind]) {
      state = "info:" + JSON.stringify(item.config || {});
    } else if (hasAnswered(id) || mode === "replay" || mode === "ended") {
      state = "done:" + JSON.stringify([answered[id], results[id] || null, mode]);
    } else {
      state = "form:" + JSON.stringify(item.config || {});
    }
    if (state === card.shown) {
      return;
    }
    card.shown = state;
    clear(card.body);
    var cfg = item.config || {};
    if (!ANSWERABLE[item.kind]) {
      drawInfo(card, cfg);
    } else if (state.indexOf("done:") === 0) {
      drawDone(card, cfg);
    } else {
      drawForm(card, cfg);
    }
  }

  function drawInfo(card, cfg) {
    var item = card.item;
    if (cfg.text) {
      card.body.appendChild(el("p", "room-card-text", cfg.text));
    }
    var href = safeUrl(cfg.url);
    if (item.kind === "offer" && Number(cfg.countdown_seconds) > 0) {
      card.timer = el("p", "room-offer-timer");
      card.timer.setAttribute("role", "timer");
      card.body.appendChild(card.timer);
    }
    if (!href) {
      return;
    }
    var link;
    if (item.kind === "download") {
      var name = cfg.file_name ? t("download_named", { name: cfg.file_name }) : t("download");
      var size = fileSize(cfg.size);
      link = el("a", "btn btn-secondary room-card-action", size ? name + " (" + size + ")" : name);
      link.href = href;
      link.setAttribute("download", cfg.file_name || "");
    } else {
      link = newTabLink("btn btn-primary room-card-action", cfg.button || item.title, href);
    }
    link.addEventListener("click", function () {
      if (socket.connected) {
        socket.emit(EVENTS.CLICK, { interaction_id: item.id });
      }
    });
    card.action = link;
    card.body.appendChild(link);
  }

  function cardTick(card, time) {
    var item = card.item;
    var seconds = Number((item.config || {}).countdown_seconds);
    if (!card.timer || !(seconds > 0) || time === null) {
      return;
    }
    var left = item.opens_at + seconds - time;
    if (left > 0) {
      card.timer.textContent = t("offer_ends", { time: clockText(left) });
      if (card.action) {
        card.action.hidden = false;
      }
    } else {
      card.timer.textContent = t("offer_ended");
      if (card.action) {
        card.action.hidden = true;
      }
    }
  }

  function choiceInput(card, type, value, text, extraClass) {
    var id = "interaction-" + card.item.id + "-" + value;
    var wrap = el("div", "room-choice" + (extraClass ? " " + extraClass : ""));
    var input = el("input");
    input.type = type;
    input.name = "interaction-" + card.item.id;
    input.id = id;
    input.value = String(value);
    var label = el("label", null, text);
    label.htmlFor = id;
    wrap.appendChild(input);
    wrap.appendChild(label);
    return wrap;
  }

  function drawForm(card, cfg) {
    var item = card.item;
    var form = el("form", "room-answer");
    form.noValidate = true;
    var submitText = item.kind === "poll" ? t("vote") : t("submit");
    var field;
    if (item.kind === "question") {
      var inputId = "interaction-" + item.id + "-text";
      var label = el("label", "room-question-label", cfg.prompt || item.title);
      label.htmlFor = inputId;
      field = el("textarea");
      field.id = inputId;
      field.rows = 3;
      field.maxLength = maxChat;
      if (cfg.placeholder) {
        field.placeholder = cfg.placeholder;
      }
      form.appendChild(label);
      form.appendChild(field);
    } else {
      var group = el("fieldset", "room-choices");
      var legend = el("legend", item.kind === "nps" ? "room-legend" : "sr-only");
      group.appendChild(legend);
      if (item.kind === "poll" || item.kind === "quiz") {
        legend.textContent = item.title;
        (cfg.options || []).forEach(function (option, index) {
          group.appendChild(choiceInput(card, cfg.multiple ? "checkbox" : "radio", index, optionText(option)));
        });
      } else if (item.kind === "nps") {
        legend.textContent = cfg.question || t("nps_question");
        var scale = el("div", "room-scale");
        for (var score = 0; score <= 10; score += 1) {
          scale.appendChild(choiceInput(card, "radio", score, String(score), "room-scale-step"));
        }
        group.appendChild(scale);
        group.appendChild(el("p", "room-scale-hints", t("nps_low") + " · " + t("nps_high")));
      } else {
        legend.textContent = item.title;
        var steps = el("div", "room-scale");
        var top = Math.max(2, Math.min(10, Number(cfg.scale) || 5));
        for (var value = 1; value <= top; value += 1) {
          var step = choiceInput(card, "radio", value, String(value), "room-scale-step");
          step.querySelector("input").setAttribute("aria-label", t("rating_value", { value: value, scale: top }));
          steps.appendChild(step);
        }
        group.appendChild(steps);
      }
      form.appendChild(group);
    }
    var error = el("p", "field-error");
    error.hidden = true;
    error.id = "interaction-" + item.id + "-error";
    form.appendChild(error);
    if (field) {
      field.setAttribute("aria-describedby", error.id);
    }
    var submit = el("button", "btn btn-primary", submitText);
    submit.type = "submit";
    form.appendChild(submit);
    card.body.appendChild(form);

    function show(text) {
      error.textContent = text || "";
      error.hidden = !text;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var answer = readAnswer(item, cfg, form, field);
      if (answer === null) {
        show(item.kind === "question" ? t("write_first") : t("choose_first"));
        return;
      }
      show("");
      if (!socket.connected) {
        show(t("answer_failed"));
        return;
      }
      submit.disabled = true;
      socket.timeout(ACK_TIMEOUT_MS).emit(EVENTS.ANSWER, { interaction_id: item.id, answer: answer }, function (err, ack) {
        submit.disabled = false;
        if (err || !ack) {
          show(t("answer_failed"));
          return;
        }
        if (!ack.ok) {
          var code = ack.error && ack.error.code;
          if (code === "already_answered") {
            answered[String(item.id)] = null;
            renderCard(card);
            return;
          }
          show(code === "closed" ? t("closed") : (ack.error && ack.error.message) || t("answer_failed"));
          return;
        }
        answered[String(item.id)] = answer;
        if (ack.results && ack.results.results) {
          results[ack.results.interaction_id || item.id] = ack.results.results;
        }
        renderCard(card);
        card.node.focus();
        tick();
      });
    });
  }

  function readAnswer(item, cfg, form, field) {
    if (item.kind === "question") {
      var text = field.value.trim();
      return text ? text : null;
    }
    var picked = Array.prototype.slice.call(form.querySelectorAll("input:checked")).map(function (input) {
      return parseInt(input.value, 10);
    });
    if (!picked.length) {
      return null;
    }
    if ((item.kind === "poll" || item.kind === "quiz") && cfg.multiple) {
      return picked;
    }
    return picked[0];
  }

  function drawDone(card, cfg) {
    var item = card.item;
    var id = String(item.id);
    var mine = answered[id];
    var res = results[id] || results[item.id];
    if (hasAnswered(id)) {
      card.body.appendChild(el("p", "room-card-thanks", mine === null ? t("already_answered") : t("thanks_answer")));
    } else {
      card.body.appendChild(el("p", "room-card-note", t("replay_closed")));
    }
    if (!res) {
      return;
    }
    if (item.kind === "poll" || item.kind === "quiz") {
      var counts = Array.isArray(res.counts) ? res.counts : [];
      var total = typeof res.total === "number" ? res.total : counts.reduce(function (sum, n) { return sum + (Number(n) || 0); }, 0);
      var correct = asList(res.correct);
      var chosen = asList(mine);
      var list = el("ul", "room-results");
      (cfg.options || []).forEach(function (option, index) {
        var count = Number(counts[index]) || 0;
        var row = el("li", "room-result");
        var head = el("p", "room-result-head");
        head.appendChild(el("span", "room-result-label", optionText(option)));
        if (correct.indexOf(index) >= 0) {
          row.classList.add("is-correct");
          head.appendChild(el("span", "room-result-tag", t("correct")));
        }
        if (chosen.indexOf(index) >= 0) {
          row.classList.add("is-mine");
          head.appendChild(el("span", "room-result-tag", t("your_answer")));
        }
        head.appendChild(el("span", "room-result-value", percent(count, total) + " · " + counted("votes", count)));
        row.appendChild(head);
        var bar = el("progress", "room-result-bar");
        bar.max = Math.max(total, 1);
        bar.value = count;
        bar.setAttribute("aria-hidden", "true");
        row.appendChild(bar);
        list.appendChild(row);
      });
      card.body.appendChild(list);
      card.body.appendChild(el("p", "room-results-total", counted("answers", total)));
      if (item.kind === "quiz" && correct.length && chosen.length) {
        var right = chosen.length === correct.length && chosen.every(function (n) { return correct.indexOf(n) >= 0; });
        card.body.appendChild(el("p", "room-quiz-verdict " + (right ? "is-right" : "is-wrong"), right ? t("right") : t("wrong")));
      }
      if (item.kind === "quiz" && res.explanation) {
        card.body.appendChild(el("p", "room-quiz-explanation", res.explanation));
      }
    } else if (item.kind === "nps" && typeof res.score === "number") {
      card.body.appendChild(el("p", "room-results-total", t("nps_score", { score: number(res.score) })));
    } else if (item.kind === "rating" && typeof res.average === "number") {
      var top = Math.max(2, Math.min(10, Number(cfg.scale) || 5));
      card.body.appendChild(el("p", "room-results-total", t("rating_average", { average: number(res.average, 1), scale: top })));
    }
    if (typeof res.total === "number" && (item.kind === "nps" || item.kind === "rating")) {
      card.body.appendChild(el("p", "room-results-count", counted("answers", res.total)));
    }
  }

  socket.on(EVENTS.INTERACTION, function (item) {
    if (stopped || !item || typeof item.id !== "number") {
      return;
    }
    timeline[item.id] = item;
    if (cards[item.id]) {
      cards[item.id].item = item;
      renderCard(cards[item.id]);
    }
    tick();
  });

  socket.on(EVENTS.RESULTS, function (payload) {
    if (stopped || !payload || payload.interaction_id === undefined) {
      return;
    }
    // A quiz's answer comes only with one's own answer: later counts keep it.
    var before = results[payload.interaction_id] || {};
    var merged = Object.assign({}, payload.results || {});
    ["correct", "correct_share", "explanation"].forEach(function (key) {
      if (!(key in merged) && key in before) {
        merged[key] = before[key];
      }
    });
    results[payload.interaction_id] = merged;
    var card = cards[payload.interaction_id];
    if (card) {
      renderCard(card);
    }
  });

  // --- chat ------------------------------------------------------------------------------------

  function isMine(message) {
    if (message.sender === "attendee" && typeof message.registrant_id === "number") {
      own[message.id] = true;
    }
    return own[message.id] === true;
  }

  function visibleInChat(message) {
    if (mode !== "replay" || message.visibility !== "public" || isMine(message)) {
      return true;
    }
    // A replay shows the session's public messages as they were written along the video.
    var time = mediaTime();
    return time !== null && message.media_seconds <= time + 0.5;
  }

  function timeOf(message) {
    try {
      return new Date(message.at_ms).toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" });
    } catch (error) {
      return "";
    }
  }

  function messageNode(message) {
    var item = el("li", "chat-msg");
    item.setAttribute("data-message", String(message.id));
    if (message.sender === "team") {
      item.classList.add("chat-msg-team");
    }
    if (isMine(message)) {
      item.classList.add("chat-msg-own");
    }
    var meta = el("p", "chat-meta");
    meta.appendChild(el("span", "chat-name", isMine(message) ? t("you") : message.name));
    if (message.sender === "team") {
      meta.appendChild(el("span", "chat-badge", t("team")));
    }
    if (message.pinned) {
      meta.appendChild(el("span", "chat-badge chat-badge-pinned", t("pinned")));
    }
    var when = el("time", "chat-time", timeOf(message));
    if (isFinite(message.at_ms)) {
      when.dateTime = new Date(message.at_ms).toISOString();
    }
    meta.appendChild(when);
    item.appendChild(meta);
    if (message.reply_to && messages[message.reply_to]) {
      var original = messages[message.reply_to];
      item.appendChild(el("p", "chat-reply", t("in_reply_to", { name: isMine(original) ? t("you") : original.name })));
    }
    item.appendChild(el("p", "chat-body", message.body));
    if (message.visibility === "pending") {
      item.appendChild(el("p", "chat-flag", t("pending")));
    } else if (message.visibility === "private" && room && room.chat_mode !== "private") {
      item.appendChild(el("p", "chat-flag", t("private")));
    }
    return item;
  }

  function renderChat(fresh) {
    if (!ui.list) {
      return;
    }
    var shown = Object.keys(messages).map(function (id) {
      return messages[id];
    }).filter(visibleInChat).sort(function (a, b) {
      return a.at_ms - b.at_ms || a.id - b.id;
    });
    var signature = shown.map(function (m) {
      return m.id + ":" + m.visibility + ":" + m.pinned + ":" + String(m.body).length;
    }).join(",");
    if (signature === chatShown && !fresh.length) {
      return;
    }
    chatShown = signature;
    var atBottom = ui.list.scrollHeight - ui.list.scrollTop - ui.list.clientHeight < 48;
    clear(ui.list);
    clear(ui.pinned);
    var pinnedCount = 0;
    shown.forEach(function (message) {
      if (message.pinned) {
        ui.pinned.appendChild(messageNode(message));
        pinnedCount += 1;
      } else {
        ui.list.appendChild(messageNode(message));
      }
    });
    ui.pinned.hidden = pinnedCount === 0;
    var own = fresh.some(function (message) {
      return isMine(message);
    });
    if (atBottom || own) {
      ui.list.scrollTop = ui.list.scrollHeight;
    }
    var heard = fresh.filter(function (message) {
      return !isMine(message) && visibleInChat(message);
    });
    if (heard.length && ui.chatLive) {
      var last = heard[heard.length - 1];
      ui.chatLive.textContent = t("new_message", { name: last.name, body: last.body.slice(0, 200) });
    }
  }

  function renderChatChrome() {
    if (!ui.chat) {
      return;
    }
    var enabled = settings.chat_enabled !== false;
    ui.chat.hidden = !enabled;
    root.classList.toggle("room-has-chat", enabled);
    var modeText = { private: t("chat_private"), moderated: t("chat_moderated"), open: t("chat_open") }[room.chat_mode] || "";
    ui.chatMode.textContent = modeText;
    ui.chatMode.hidden = !modeText;
    ui.chatTeam.hidden = teamOnline;
    if (ui.chatWelcome) {
      ui.chatWelcome.textContent = settings.welcome || "";
      ui.chatWelcome.hidden = !settings.welcome;
    }
    applyMuted();
  }

  function applyMuted() {
    ui.body.disabled = muted;
    ui.send.disabled = muted || sending;
    ui.chatNote.textContent = muted ? t("muted") : "";
    ui.chatNote.hidden = !muted;
  }

  function chatError(text) {
    ui.chatError.textContent = text || "";
    ui.chatError.hidden = !text;
    if (text) {
      ui.body.setAttribute("aria-invalid", "true");
    } else {
      ui.body.removeAttribute("aria-invalid");
    }
  }

  function sendMessage() {
    if (sending || muted || stopped) {
      return;
    }
    var body = ui.body.value.trim();
    if (!body) {
      chatError(t("chat_empty"));
      ui.body.focus();
      return;
    }
    if (body.length > maxChat) {
      chatError(t("chat_too_long", { max: number(maxChat) }));
      ui.body.focus();
      return;
    }
    if (!socket.connected) {
      chatError(t("chat_failed"));
      return;
    }
    chatError("");
    sending = true;
    ui.send.disabled = true;
    ui.send.textContent = t("sending");
    socket.timeout(ACK_TIMEOUT_MS).emit(EVENTS.CHAT_SEND, { body: body }, function (error, ack) {
      sending = false;
      ui.send.textContent = sendLabel;
      applyMuted();
      if (error || !ack) {
        chatError(t("chat_failed"));
        return;
      }
      if (!ack.ok) {
        // The typed text stays in the box, to be changed and sent again.
        chatError((ack.error && ack.error.message) || t("chat_failed"));
        if (ack.error && ack.error.code === "muted") {
          muted = true;
          applyMuted();
        }
        return;
      }
      if (ui.body.value.trim() === body) {
        ui.body.value = "";
      }
      if (ack.message && typeof ack.message.id === "number") {
        own[ack.message.id] = true;
        messages[ack.message.id] = ack.message;
        renderChat([ack.message]);
      }
    });
  }

  if (ui.form) {
    ui.form.addEventListener("submit", function (event) {
      event.preventDefault();
      sendMessage();
    });
    ui.body.addEventListener("keydown", function (event) {
      // Enter sends, Shift+Enter starts a new line (and nothing is sent while composing text).
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      }
    });
    ui.body.addEventListener("input", function () {
      if (!ui.chatError.hidden && ui.body.value.trim()) {
        chatError("");
      }
    });
  }

  socket.on(EVENTS.CHAT, function (batch) {
    if (stopped || !batch || !Array.isArray(batch.messages)) {
      return;
    }
    var fresh = [];
    batch.messages.forEach(function (message) {
      if (!message || typeof message.id !== "number") {
        return;
      }
      if (!messages[message.id]) {
        fresh.push(message);
      }
      messages[message.id] = message;
    });
    renderChat(fresh);
  });

  socket.on(EVENTS.CHAT_REMOVED, function (payload) {
    if (stopped || !payload || !Array.isArray(payload.ids)) {
      return;
    }
    payload.ids.forEach(function (id) {
      delete messages[id];
    });
    renderChat([]);
  });

  socket.on(EVENTS.TEAM, function (payload) {
    teamOnline = Boolean(payload && payload.online);
    if (ui.chatTeam) {
      ui.chatTeam.hidden = teamOnline;
    }
  });

  socket.on(EVENTS.RESTRICTED, function (payload) {
    if (!payload) {
      return;
    }
    if (payload.kind === "ban") {
      fatal(t("removed"));
    } else if (payload.kind === "mute" || payload.kind === "lift") {
      muted = payload.kind === "mute";
      applyMuted();
    }
  });

  // --- heartbeat and the clock's tick ----------------------------------------------------------

  function heartbeat() {
    if (!room || stopped || !socket.connected) {
      return;
    }
    var time = mediaTime();
    socket.emit(EVENTS.HEARTBEAT, {
      position: Math.round((time || 0) * 10) / 10,
      playing: isPlaying()
    });
  }
  window.setInterval(heartbeat, (config.heartbeat_seconds || 20) * 1000);
  window.addEventListener("pagehide", heartbeat);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      heartbeat();
    }
  });

  function tick() {
    if (stopped) {
      return;
    }
    waitingTick();
    if (!room) {
      return;
    }
    if (mode === "live" && liveEdge() >= duration()) {
      showEnd(true);
    }
    playerTick();
    updateCards();
    if (player) {
      holdForRequired(player);
    }
    if (mode === "replay") {
      renderChat([]);
    }
  }
  window.setInterval(tick, 250);
  tick();
})();
