// Click or tap to enlarge: figures shrink to the text column (a quarter of their size on
// a phone), so each image of the article links to itself and opens at full size, at least the
// window's width, in a dialog that scrolls; a click, Escape or "Close" closes it.
document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.createElement("dialog");
  dialog.className = "figure-zoom";
  dialog.setAttribute("aria-label", "Enlarged figure");
  const close = document.createElement("button");
  close.type = "button";
  close.className = "figure-zoom-close btn btn-sm";
  close.textContent = "Close";
  const large = document.createElement("img");
  dialog.append(close, large);
  document.body.append(dialog);
  dialog.addEventListener("click", () => dialog.close());

  document.querySelectorAll(".bd-article img").forEach((img) => {
    if (img.closest("a")) return;  // Sphinx already links scaled images to themselves
    const link = document.createElement("a");
    link.href = img.getAttribute("src");
    img.replaceWith(link);
    link.append(img);
  });
  document.querySelectorAll(".bd-article a > img").forEach((img) => {
    const link = img.parentElement;
    if (link.getAttribute("href") !== img.getAttribute("src")) return;
    link.classList.add("figure-zoom-link");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      large.src = img.src;
      large.alt = img.alt;
      dialog.showModal();
    });
  });
});
