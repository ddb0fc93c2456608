// A jump to a moment (?at=…) marks the transcript line spoken then. When the link named no
// element of its own (#line-…), bring that line into view; otherwise the browser already
// scrolled to the element the link named.
document.addEventListener("DOMContentLoaded", () => {
  const line = document.querySelector("[data-jump]");
  if (!line || (location.hash && document.getElementById(location.hash.slice(1)))) return;
  line.scrollIntoView({ block: "center" });
});
