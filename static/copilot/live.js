/*
 * The live page's browser half (templates/sessions_app/live.html#board).
 *
 * htmx's ws extension owns the socket and swaps each pushed fragment by its id
 * (hx-swap-oob). This file adds what a live view needs around that:
 *  - a new item (an id not on the page yet) goes into its list in start-time order
 *    (data-list, data-order), and an older copy of an item never replaces a newer one
 *    (data-seq): a message received twice, or late, changes nothing;
 *  - on every (re)connect it sends {"type": "resume", "last_seq": N}, N being the highest
 *    sequence number up to which the page is complete; the server replays what came after,
 *    a page at a time (a marker with data-more: ask again from there); a gap in the numbers
 *    that lasts GAP_MS (a push lost on the way) is asked for the same way, without a reload;
 *  - a ping every data-ping-seconds; no message for data-stale-seconds means a dead
 *    connection, which is replaced; the indicator says live / reconnecting / offline;
 *  - capture health: each stream's age since its last event, and a warning when a channel
 *    of an active session is silent for data-silence-seconds;
 *  - the transcript follows new lines unless the reader scrolled up ("Jump to latest");
 *  - the status banner never goes back to an earlier status (data-rank: a late copy), and
 *    each banner that arrives fires "live-status" on the body, on which the owner's
 *    status card fetches itself again (templates/sessions_app/session_detail.html).
 * Protocol and close codes: sessions_app/consumers.py.
 */
(function () {
  "use strict";

  var root = document.getElementById("live");
  if (!root) return;

  function num(value, fallback) {
    var n = Number(value);
    return value !== undefined && value !== "" && isFinite(n) ? n : fallback;
  }

  var pingMs = num(root.dataset.pingSeconds, 20) * 1000;
  var staleMs = num(root.dataset.staleSeconds, 45) * 1000;
  var silenceMs = num(root.dataset.silenceSeconds, 20) * 1000;
  var skewMs = num(root.dataset.serverMs, Date.now()) - Date.now(); // server clock - ours

  // --- capture health --------------------------------------------------------------------

  var heard = {}; // stream id -> server-clock ms of the newest event seen live here

  function markHeard(streamId) {
    if (streamId) heard[streamId] = Date.now() + skewMs;
  }

  function sessionActive() {
    var status = document.getElementById("live-status");
    return !!status && status.dataset.sessionStatus === "active";
  }

  function ageText(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  var lastWarning = "";

  function refreshHealth() {
    var now = Date.now() + skewMs;
    var active = sessionActive();
    var silent = [];
    document.querySelectorAll("#health li.health").forEach(function (row) {
      var state = row.querySelector(".health-state");
      if (!state) return;
      var last = Math.max(num(row.dataset.lastEvent, 0), heard[row.dataset.stream] || 0);
      var next;
      if (!last) {
        next = "waiting";
        state.textContent = "no events yet";
      } else if (active && now - last > silenceMs) {
        next = "silent";
        state.textContent = "silent for " + ageText(now - last);
        var name = row.querySelector(".speaker");
        silent.push(name ? name.textContent.trim() : "a channel");
      } else {
        next = active ? "live" : "idle";
        state.textContent = (active ? "live, last event " : "last event ") + ageText(now - last) + " ago";
      }
      state.dataset.state = next;
      row.dataset.state = next;
    });
    var warning = document.getElementById("health-warning");
    var text = silent.length
      ? "No events for over " + Math.round(silenceMs / 1000) + " s from: " + silent.join(", ") +
        ". Check that the desktop client is still capturing."
      : "";
    if (warning && text !== lastWarning) {
      warning.textContent = text; // a status region: announced when it changes, not every second
      warning.hidden = !text;
      lastWarning = text;
    }
  }

  refreshHealth();
  setInterval(refreshHealth, 1000);

  // --- every live list follows its newest item unless the reader scrolled away ----------
  // Each [data-follow] list has a "new … below" button right after it (in the flow, so it
  // never covers a line): shown when something arrived out of view, it scrolls back down.

  var followers = [];
  document.querySelectorAll("[data-follow]").forEach(function (list) {
    var marker = document.querySelector('.new-items[data-for="' + list.id + '"]');
    var state = { list: list, marker: marker, follow: true, size: list.children.length };
    function atBottom() {
      return list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    }
    state.toLatest = function () {
      list.scrollTop = list.scrollHeight;
      state.ownTop = list.scrollTop;
      state.follow = true;
      if (marker) marker.hidden = true;
    };
    list.addEventListener("scroll", function () {
      // The event of our own scroll comes a frame later, when more lines may have made the
      // list longer: it is not the reader scrolling away.
      if (list.scrollTop === state.ownTop) return;
      state.follow = atBottom();
      if (state.follow && marker) marker.hidden = true;
    });
    if (marker) {
      marker.addEventListener("click", function () {
        state.toLatest();
        list.focus();
      });
    }
    state.toLatest();
    followers.push(state);
  });

  function followAll() {
    followers.forEach(function (state) {
      var grew = state.list.children.length !== state.size;
      state.size = state.list.children.length;
      if (state.follow) state.toLatest();
      else if (grew && state.marker && state.list.scrollHeight > state.list.clientHeight) {
        state.marker.hidden = false;
      }
    });
  }

  // --- what a screen reader hears, and the alert toast -----------------------------------
  // The lists themselves are not live regions: an interim line changes every few hundred
  // ms. Finished lines, new insights, alerts and the phase are said once, here.

  var announcer = document.getElementById("live-announcer");
  var pending = [];
  var announceTimer = null;

  function announce(text) {
    if (!announcer || !text) return;
    pending.push(text);
    if (announceTimer) return;
    announceTimer = setTimeout(function () {
      // Batched: a burst of lines is one announcement, not a queue that never ends.
      announcer.textContent = pending.slice(-3).join(" ");
      pending = [];
      announceTimer = null;
    }, 700);
  }

  function textOf(element, selector) {
    var part = element.querySelector(selector);
    return part ? part.textContent.replace(/\s+/g, " ").trim() : "";
  }

  var toasts = document.getElementById("alert-toasts");
  var TOAST_MS = 8000;

  function toast(alertItem) {
    if (!toasts) return;
    var box = document.createElement("div");
    box.className = "toast";
    var head = document.createElement("p");
    head.className = "toast-title";
    head.textContent = "Alert at " + textOf(alertItem, ".offset") + ": " + textOf(alertItem, ".alert-title");
    box.appendChild(head);
    var why = textOf(alertItem, ".text");
    if (why) {
      var body = document.createElement("p");
      body.textContent = why;
      box.appendChild(body);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss alert");
    close.textContent = "×";
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(close);
    toasts.appendChild(box);
    while (toasts.children.length > 3) toasts.firstElementChild.remove();
    setTimeout(function () { box.remove(); }, TOAST_MS);
  }

  // --- the page's phase (waiting, live, ended) follows the status banner ------------------

  var PHASE_SAID = { live: "Capture is live.", ended: "The meeting has ended." };

  function applyPhase() {
    var status = document.getElementById("live-status");
    var phase = status && status.dataset.phase;
    if (!phase || phase === root.dataset.phase) return;
    var before = root.dataset.phase;
    root.dataset.phase = phase;
    document.querySelectorAll(".session-page[data-phase]").forEach(function (page) {
      page.dataset.phase = phase;
    });
    if (phase === "ended") {
      // No final will come for a line still shown as spoken: it was not finished live.
      document.querySelectorAll('[data-list-root="transcript"] li[id^="interim-"]').forEach(function (line) {
        line.remove();
      });
    }
    if (before === "waiting" && phase !== "waiting") {
      var handoff = document.getElementById("handoff");
      if (handoff) handoff.open = false; // folded: the live view is what matters now
    }
    announce(PHASE_SAID[phase]);
  }

  // --- new items in order, older copies never over newer ones ---------------------------

  function insertInOrder(element) {
    var list = document.querySelector('[data-list-root="' + element.dataset.list + '"]');
    if (!list) return false;
    var order = num(element.dataset.order, 0);
    // New items are nearly always the latest: scan from the end.
    var child = list.lastElementChild;
    while (child && !(child.dataset.order !== undefined && num(child.dataset.order, 0) <= order)) {
      child = child.previousElementSibling;
    }
    if (child) child.after(element);
    else {
      var first = list.querySelector("[data-order]");
      if (first) first.before(element);
      else list.appendChild(element);
    }
    return true;
  }

  // --- interim lines: one element per stream (interim-<stream>), never stored -----------
  // The stored final of a line (seg-<id>) replaces its interim: the interim element goes
  // when a final of the same stream starting at or after it arrives, and an interim of a
  // line whose final is on the page already (late, or resent on resume) is not shown.

  var settled = {}; // stream id -> start (data-order) of the newest final line on the page

  function isInterim(element) {
    return !!element.id && element.id.indexOf("interim-") === 0;
  }

  function noteFinal(line) {
    var stream = line.dataset.stream;
    var order = num(line.dataset.order, 0);
    if (!stream || line.classList.contains("interim")) return;
    if (settled[stream] === undefined || order > settled[stream]) settled[stream] = order;
    var shown = document.getElementById("interim-" + stream);
    if (shown && num(shown.dataset.order, 0) <= order) shown.remove();
  }

  function lateInterim(element) {
    if (!isInterim(element)) return false;
    var done = settled[element.dataset.stream];
    if (done !== undefined && num(element.dataset.order, 0) <= done) return true;
    var shown = document.getElementById(element.id);
    // An interim of an earlier line than the one shown: it was overtaken.
    return !!shown && num(element.dataset.order, 0) < num(shown.dataset.order, 0);
  }

  document.querySelectorAll('[data-list-root="transcript"] li.line[id^="seg-"]').forEach(noteFinal);

  // Before htmx swaps a message: give each new item an empty slot in its list, so the
  // swap that follows fills it in place (htmx swaps by id; it cannot know where a new id
  // belongs). The slot's seq is -1, below any real copy.
  function prepareSlot(incoming) {
    if (!incoming.id || lateInterim(incoming)) return;
    var present = document.getElementById(incoming.id);
    if (present && isInterim(incoming)) {
      // The stream's next line: its interim element moves to where that line starts.
      if (present.dataset.order !== incoming.dataset.order) {
        present.remove();
        present.dataset.order = incoming.dataset.order;
        insertInOrder(present);
      }
      return;
    }
    if (present) {
      // A newer copy that belongs elsewhere in its list (a brief item whose earliest cited
      // moment changed): move it there first, and the swap fills it in its new place.
      if (present.dataset.order !== undefined && incoming.dataset.order !== undefined &&
          present.dataset.order !== incoming.dataset.order &&
          num(incoming.dataset.seq, 0) > num(present.dataset.seq, 0)) {
        present.remove();
        present.dataset.order = incoming.dataset.order;
        insertInOrder(present);
      }
      return;
    }
    var slot = document.createElement(incoming.tagName);
    slot.id = incoming.id;
    slot.className = "slot";
    slot.dataset.list = incoming.dataset.list;
    slot.dataset.order = incoming.dataset.order;
    slot.dataset.seq = "-1";
    insertInOrder(slot);
  }

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var target = event.detail.target;
    var fragment = event.detail.fragment;
    var incoming = fragment && (fragment.firstElementChild || fragment);
    if (!target || !incoming || !target.dataset || !incoming.dataset) return;
    if (lateInterim(incoming)) {
      event.detail.shouldSwap = false; // its final is on the page, or a later line is shown
      return;
    }
    if (target.dataset.rank !== undefined && incoming.dataset.rank !== undefined &&
        num(incoming.dataset.rank, 0) < num(target.dataset.rank, 0)) {
      event.detail.shouldSwap = false; // a late copy of an earlier status
      return;
    }
    if (target.dataset.seq === undefined || incoming.dataset.seq === undefined) return;
    if (num(incoming.dataset.seq, 0) < num(target.dataset.seq, 0)) {
      event.detail.shouldSwap = false; // a late copy of something the page already has newer
    }
  });

  // The fallback when an item arrives by any other oob path: htmx found no element with
  // its id, so put it into its list here.
  document.addEventListener("htmx:oobErrorNoTarget", function (event) {
    var element = event.detail.content;
    if (element && element.dataset && element.dataset.list && !document.getElementById(element.id) &&
        !lateInterim(element)) {
      if (insertInOrder(element)) htmx.process(element);
    }
  });

  var socketHolder = document.getElementById("live-socket");
  var connection = document.getElementById("connection");
  if (!socketHolder || !connection) return; // an ended session: nothing more comes

  // --- sequence numbers: what the page is complete up to --------------------------------

  var complete = num(root.dataset.lastSeq, 0); // every change numbered <= this is on the page
  var received = {}; // numbers above `complete` seen since, waiting for the ones between
  var replaying = false;

  function noteSeq(seq) {
    if (seq <= complete) return;
    received[seq] = true;
    while (received[complete + 1]) {
      delete received[complete + 1];
      complete += 1;
    }
  }
  function completeThrough(through) {
    if (through <= complete) return;
    complete = through;
    Object.keys(received).forEach(function (seq) {
      if (Number(seq) <= complete) delete received[seq];
    });
    while (received[complete + 1]) {
      delete received[complete + 1];
      complete += 1;
    }
  }

  // A number above `complete` arrived but one between did not: a push that was lost (a
  // publish that failed on the server, a dropped message). Give it GAP_MS to arrive late,
  // then ask for what is missing with a resume, without a reload.
  var GAP_MS = 2000;
  var gapTimer = null;

  function watchGap() {
    if (gapTimer || replaying || !Object.keys(received).length) return;
    var waitingFor = complete;
    gapTimer = setTimeout(function () {
      gapTimer = null;
      if (stopped || replaying || !socket || socket.readyState !== 1) return;
      if (!Object.keys(received).length) return; // filled in meanwhile
      if (complete !== waitingFor) {
        watchGap(); // it moved: give the rest of the gap its own time
        return;
      }
      replaying = true;
      send({ type: "resume", last_seq: complete });
    }, GAP_MS);
  }

  // --- the connection ------------------------------------------------------------------

  var FINAL = { 4400: 1, 4401: 1, 4403: 1, 4404: 1, 4413: 1 }; // do not come back after these
  var HTMX_RETRIES = { 1006: 1, 1011: 1, 1012: 1, 1013: 1 }; // the ws extension reconnects
  var wrapper = null;
  var socket = null;
  var lastHeard = Date.now();
  var retries = 0;
  var failedOpens = 0;
  var stopped = false;

  function show(state, text) {
    connection.dataset.state = state;
    connection.textContent = text;
    root.dataset.connection = state;
  }

  function stop(text) {
    stopped = true;
    show("closed", text);
    socketHolder.remove(); // the ws extension stops reconnecting once its element is gone
  }

  function send(message) {
    if (wrapper) wrapper.send(JSON.stringify(message));
  }

  function replaceSocket() {
    if (stopped || !wrapper) return;
    if (socket) {
      socket.onclose = null; // this one is given up: its late close must not reconnect again
      socket.onerror = null;
    }
    show(navigator.onLine === false ? "offline" : "reconnecting", navigator.onLine === false ? "Offline: waiting for the network…" : "Reconnecting…");
    wrapper.reconnect();
  }

  document.addEventListener("htmx:wsConnecting", function () {
    if (!stopped && root.dataset.connection !== "offline") {
      show(root.dataset.connection === "live" || retries ? "reconnecting" : "connecting",
        retries ? "Reconnecting…" : "Connecting…");
    }
  });

  document.addEventListener("htmx:wsOpen", function (event) {
    wrapper = event.detail.socketWrapper;
    socket = event.detail.event.target;
    retries = 0;
    failedOpens = 0;
    lastHeard = Date.now();
    show("live", "Connected");
    replaying = true;
    send({ type: "resume", last_seq: complete });
  });

  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail.event.code;
    var closed = event.detail.event.target;
    wrapper = event.detail.socketWrapper || wrapper;
    if (socket && closed !== socket && socket.readyState <= 1) return; // one already replaced
    var wasOpen = closed === socket;
    socket = null;
    if (stopped) return;
    if (FINAL[code]) {
      stop(code === 4403 || code === 4401 ? "Disconnected: this link no longer gives access." : "Disconnected.");
      return;
    }
    if (!wasOpen) {
      failedOpens += 1;
      if (failedOpens >= 2) probeAccess();
    }
    retries += 1;
    if (navigator.onLine === false) show("offline", "Offline: waiting for the network…");
    else show("reconnecting", "Reconnecting…");
    if (!HTMX_RETRIES[code]) {
      // Closed cleanly (server restart, idle timeout, …): the extension leaves it there.
      var delay = Math.min(30000, 500 * Math.pow(2, Math.min(retries, 6))) * Math.random();
      setTimeout(function () {
        if (!stopped && (!socket || socket.readyState > 1)) replaceSocket();
      }, delay);
    }
  });

  // A handshake the server refuses looks like a dropped network to a browser. Ask the page
  // itself: if it is gone (link revoked or expired, logged out), stop trying.
  function probeAccess() {
    var url = root.dataset.probeUrl;
    if (!url) return;
    fetch(url, { credentials: "same-origin", redirect: "manual", cache: "no-store" })
      .then(function (response) {
        if (response.status === 404 || response.status === 403) stop("Disconnected: this page is no longer available to you.");
        else if (response.type === "opaqueredirect") stop("Disconnected: you were logged out.");
      })
      .catch(function () { /* still offline: keep trying */ });
  }

  var statusArrived = false;
  var afterFrame = 0;
  var streamsChanged = false;

  // A pushed item the page did not have in this form: say it, or raise it as a toast. An
  // alert missed while away is news too; a replayed burst of lines is not read out.
  function heardNew(incoming, known) {
    var list = incoming.dataset.list;
    if (list === "alerts" && !known && incoming.dataset.triggered) {
      toast(incoming);
      return;
    }
    if (replaying) return;
    if (list === "transcript") {
      var wasFinal = known && !known.classList.contains("interim") && known.dataset.seq !== "-1";
      if (!incoming.classList.contains("interim") && !wasFinal) {
        announce(textOf(incoming, ".speaker") + ": " + textOf(incoming, ".text"));
      }
    } else if (list === "insights" && !known) {
      announce("Insight: " + textOf(incoming, ".text"));
    }
  }

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    lastHeard = Date.now();
    var template = document.createElement("template");
    template.innerHTML = event.detail.message;
    var children = template.content.children;
    if (children.length && Array.prototype.every.call(children, lateInterim)) {
      // An interim the page must not show (its line's final is here already): nothing to
      // swap, and htmx would report an element it cannot place.
      markHeard(children[0].dataset.stream);
      event.preventDefault();
      return;
    }
    Array.prototype.forEach.call(children, function (incoming) {
      if (incoming.id === "live-status") {
        statusArrived = true;
      } else if (incoming.id === "live-heartbeat") {
        skewMs = num(incoming.dataset.serverMs, Date.now() + skewMs) - Date.now();
      } else if (incoming.id === "live-synced") {
        completeThrough(num(incoming.dataset.through, 0));
        if (incoming.dataset.more) {
          send({ type: "resume", last_seq: complete }); // one page of a long replay: the next
        } else {
          replaying = false;
          watchGap();
        }
      } else if (incoming.dataset.list) {
        noteSeq(num(incoming.dataset.seq, 0));
        watchGap();
        if (!replaying) markHeard(incoming.dataset.stream);
        var known = document.getElementById(incoming.id);
        heardNew(incoming, known);
        if (incoming.dataset.list === "health" && !known) streamsChanged = true;
        if (incoming.dataset.list === "transcript" && !isInterim(incoming)) noteFinal(incoming);
        prepareSlot(incoming);
      }
    });
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    if (statusArrived) {
      statusArrived = false;
      applyPhase();
      htmx.trigger(document.body, "live-status");
    }
    if (streamsChanged) {
      streamsChanged = false;
      htmx.trigger(document.body, "live-streams");
    }
    // Once per frame the browser paints, not once per message: each reads the lists'
    // layout, and a burst of messages (a catch-up, a busy meeting) would lay them out again
    // for every one. A hidden tab paints nothing: it follows when it is shown.
    if (!afterFrame) {
      afterFrame = requestAnimationFrame(function () {
        afterFrame = 0;
        refreshHealth();
        followAll();
      });
    }
  });

  setInterval(function () {
    if (stopped || !socket || socket.readyState !== 1) return;
    send({ type: "ping" });
  }, pingMs);

  setInterval(function () {
    if (stopped || !socket || socket.readyState !== 1) return;
    if (Date.now() - lastHeard > staleMs) replaceSocket(); // a silent connection is a dead one
  }, 1000);

  // The browser knows when the network went away: a socket open across that is likely
  // dead (its peer may never tell), so give it up now and start afresh (with a resume)
  // when the network is back, instead of waiting for the heartbeat to notice.
  window.addEventListener("offline", function () {
    if (stopped) return;
    show("offline", "Offline: waiting for the network…");
    if (socket) {
      var dead = socket;
      dead.onclose = null;
      dead.onerror = null;
      socket = null;
      dead.close();
    }
  });
  window.addEventListener("online", function () {
    if (!stopped && !(socket && socket.readyState === 1)) replaceSocket();
  });
})();
