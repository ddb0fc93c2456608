/*
 * "Ask the meeting" and the moments cited on a page (templates/sessions_app/ask.html,
 * catchup.html).
 *  - The ask form comes back in place after each try. htmx leaves error answers unswapped;
 *    a refused question (400 empty or too long, 403 not allowed, 429 too many) carries the
 *    form with the reason, so it is swapped in like a success.
 *  - A citation (a[data-moment]) on a page that shows the cited element (the live page:
 *    seg-12, ins-3, alert-9) scrolls to it and highlights it; elsewhere the link opens the
 *    history page at that moment.
 */
(function () {
  "use strict";

  var REFUSED = { 400: 1, 403: 1, 429: 1 };
  var HIGHLIGHT_MS = 4000;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("#ask-form");
    if (form && REFUSED[event.detail.xhr.status]) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // After a question was taken the form comes back empty: keep the cursor in it.
  document.addEventListener("htmx:afterSwap", function (event) {
    var form = event.detail.target;
    if (!form || form.id !== "ask-form") return;
    var field = document.getElementById("ask-question");
    if (field) field.focus();
  });

  var timers = {};

  function highlight(element) {
    element.classList.add("cited");
    if (!element.hasAttribute("tabindex")) element.setAttribute("tabindex", "-1");
    element.scrollIntoView({ block: "center", behavior: "smooth" });
    element.focus({ preventScroll: true });
    clearTimeout(timers[element.id]);
    timers[element.id] = setTimeout(function () {
      element.classList.remove("cited");
    }, HIGHLIGHT_MS);
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-moment]");
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    var element = document.getElementById(link.dataset.moment);
    if (!element || element.closest("[hidden]")) return; // not on this page: follow the link
    event.preventDefault();
    highlight(element);
  });
})();
