/*
 * Catch me up (templates/sessions_app/catchup.html, sessions_app/intelligence/catchup.py).
 *
 * The browser remembers, per session, the last sequence number it showed (localStorage
 * "copilot.seen.<session>"); it moves on as fragments arrive while the page is watched, and
 * when a catch-up panel is dismissed. The panel shows the brief's items and the alerts that
 * changed after it:
 *  - "Since you were last here": on a reload that finds newer numbers than remembered, after
 *    a socket reconnect whose replay brought what arrived while the page was away, and when
 *    the tab comes back after a minute or more in the background;
 *  - "Since you joined": on a first visit to a meeting live for more than a minute, with
 *    everything current in the brief and every alert so far.
 * The panel stays until dismissed (one click); until then the remembered number waits, so
 * a reload shows it again. Nothing is shown when nothing relevant changed.
 */
(function () {
  "use strict";

  var root = document.getElementById("live");
  var slot = document.getElementById("catch-up");
  if (!root || !slot || !window.htmx) return;

  var KEY = "copilot.seen." + slot.dataset.session;
  var JOINED_AFTER_MS = 60000; // a meeting younger than this has nothing to catch up on
  var AWAY_MS = 60000; // a tab in the background this long was away

  function num(value, fallback) {
    var n = Number(value);
    return value !== undefined && value !== null && value !== "" && isFinite(n) ? n : fallback;
  }

  function stored() {
    try {
      return num(window.localStorage.getItem(KEY), null);
    } catch (e) {
      return null; // storage disabled: every visit is a first one
    }
  }

  function remember(seq) {
    try {
      if (seq > num(stored(), -1)) window.localStorage.setItem(KEY, String(seq));
    } catch (e) { /* storage disabled or full: nothing to remember with */ }
  }

  var seen = num(root.dataset.lastSeq, 0); // the newest number this page has shown
  var open = false; // a panel is asked for or shown: the remembered number waits
  var shownSince = 0;
  var shownJoined = false;

  function show(since, joined) {
    open = true;
    shownSince = since;
    shownJoined = joined;
    var url = slot.dataset.url + "?since=" + since + (joined ? "&mode=joined" : "");
    htmx.ajax("GET", url, { target: slot, swap: "innerHTML" }).then(function () {
      var panel = slot.querySelector(".catch-up");
      slot.hidden = !panel;
      if (!panel) {
        open = false;
        if (!document.hidden) remember(seen); // nothing worth showing: caught up
      }
    });
  }

  function dismiss(through) {
    seen = Math.max(seen, through);
    open = false;
    slot.hidden = true;
    slot.textContent = "";
    remember(seen);
    var feed = document.getElementById("transcript");
    if (feed) feed.focus({ preventScroll: true });
  }

  slot.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".catch-up-dismiss");
    if (button) dismiss(num(button.dataset.through, seen));
  });

  // --- on load ----------------------------------------------------------------------------

  var last = stored();
  if (last === null) {
    var status = document.getElementById("live-status");
    var skewMs = num(root.dataset.serverMs, Date.now()) - Date.now();
    var started = num(slot.dataset.startedMs, 0);
    var liveFor = Date.now() + skewMs - started;
    if (status && status.dataset.sessionStatus === "active" && started && liveFor > JOINED_AFTER_MS) {
      show(0, true);
    } else {
      remember(seen);
    }
  } else if (last < seen) {
    show(last, false);
  } else {
    remember(seen);
  }

  // --- while watching -------------------------------------------------------------------

  var opens = 0;
  var gapFrom = null; // after a reconnect: the number the page had reached before it

  function comeBack(from) {
    show(open ? Math.min(shownSince, from) : from, open && shownJoined);
  }

  document.addEventListener("htmx:wsOpen", function () {
    opens += 1;
    if (opens > 1) gapFrom = seen;
  });

  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var template = document.createElement("template");
    template.innerHTML = event.detail.message;
    Array.prototype.forEach.call(template.content.children, function (incoming) {
      if (incoming.id === "live-synced") {
        var through = num(incoming.dataset.through, 0);
        if (gapFrom !== null && through > gapFrom) comeBack(gapFrom);
        gapFrom = null;
        seen = Math.max(seen, through);
      } else if (incoming.dataset && incoming.dataset.list && incoming.dataset.seq) {
        seen = Math.max(seen, num(incoming.dataset.seq, 0));
      }
    });
    if (!open && !document.hidden) remember(seen);
  });

  var hiddenAt = null;
  var hiddenSeq = seen;
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      hiddenAt = Date.now();
      hiddenSeq = seen;
      return;
    }
    var away = hiddenAt !== null && Date.now() - hiddenAt >= AWAY_MS;
    hiddenAt = null;
    if (away && seen > hiddenSeq) comeBack(hiddenSeq);
    else if (!open) remember(seen);
  });
})();
