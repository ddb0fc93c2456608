// Copy buttons: <button data-copy="<id of a textarea>" data-copy-status="<id of a live region>">.
// The clipboard API needs a secure context (HTTPS or localhost); elsewhere, or when it is
// refused, the text is selected so that Ctrl+C / ⌘C copies it, and the status says so.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const status = document.getElementById(button.dataset.copyStatus);
  if (!source) return;
  let copied = false;
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(source.value);
      copied = true;
    } catch {
      copied = false;
    }
  }
  if (!copied) {
    source.focus();
    source.select();
    try {
      copied = document.execCommand("copy");
    } catch {
      copied = false;
    }
  }
  if (status) {
    // Cleared first, so that a second copy is announced again.
    status.textContent = "";
    window.setTimeout(() => {
      status.textContent = copied ? "Copied" : "Selected: press Ctrl+C (⌘C on a Mac) to copy";
    }, 50);
  }
});
