// Copy buttons, for any page (base.html loads this once; no inline script, CSP-safe).
//
//   <input id="share-url" value="https://…" readonly>
//   <button type="button" data-copy-target="#share-url">Copy</button>
//
// data-copy-target: a CSS selector (or, for older markup, data-copy="<id>"). The text copied
//   is the element's value (input, textarea) or else its text.
// data-copy-status (optional): the id of a visible live region to write the outcome into.
//   Without it, the outcome goes to the page's polite announcer (#copy-announcer in base.html)
//   and the button shows a tick for two seconds (data-copied, styled in app.css).
// data-copy-label (optional): what was copied, for the announcement ("Share link" → "Share
//   link copied"); default "Copied".
//
// The clipboard API needs a secure context (HTTPS or localhost); elsewhere, or when it is
// refused, the text is selected so that Ctrl+C / ⌘C copies it, and the status says so.
(() => {
  if (window.copilotCopy) return; // loaded twice (a page that also lists it): one listener
  const SHOWN_MS = 2000;
  const timers = new WeakMap();

  function sourceOf(button) {
    const selector = button.dataset.copyTarget;
    if (selector) {
      try {
        return document.querySelector(selector);
      } catch {
        return null; // not a valid selector
      }
    }
    return button.dataset.copy ? document.getElementById(button.dataset.copy) : null;
  }

  function textOf(source) {
    return "value" in source && typeof source.value === "string"
      ? source.value
      : source.textContent.trim();
  }

  function select(source) {
    if (typeof source.select === "function") {
      source.focus();
      source.select();
      return;
    }
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  async function copy(text, source) {
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        return true;
      } catch {
        // refused (no permission, document not focused): fall back to selecting
      }
    }
    select(source);
    try {
      return document.execCommand("copy");
    } catch {
      return false;
    }
  }

  function announce(region, message) {
    if (!region) return;
    // Cleared first, so that copying the same thing twice is announced twice.
    region.textContent = "";
    window.setTimeout(() => {
      region.textContent = message;
    }, 50);
  }

  function show(button) {
    button.setAttribute("data-copied", "");
    window.clearTimeout(timers.get(button));
    timers.set(
      button,
      window.setTimeout(() => button.removeAttribute("data-copied"), SHOWN_MS),
    );
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-copy-target], button[data-copy]");
    if (!button) return;
    const source = sourceOf(button);
    if (!source) return;
    const copied = await copy(textOf(source), source);
    const label = button.dataset.copyLabel;
    const message = copied
      ? label
        ? `${label} copied`
        : "Copied"
      : "Selected: press Ctrl+C (⌘C on a Mac) to copy";
    const status = button.dataset.copyStatus
      ? document.getElementById(button.dataset.copyStatus)
      : null;
    if (status) {
      announce(status, message);
    } else {
      announce(document.getElementById("copy-announcer"), message);
      if (copied) show(button);
    }
  });

  window.copilotCopy = { copy };
})();
