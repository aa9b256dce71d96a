// Workaround for https://github.com/pydata/pydata-sphinx-theme/issues/2451 (loaded by
// book/_ext/site_fixes.py only for the affected theme versions): the theme binds its
// sidebar handlers to the first .primary-toggle / .secondary-toggle, a button that
// sphinx-book-theme hides, so the visible ones in the article header did nothing.
// A click on any other toggle is handed to the bound one; stopping it here also keeps
// a later fixed theme from acting twice.
document.addEventListener("click", (event) => {
  for (const selector of [".primary-toggle", ".secondary-toggle"]) {
    const pressed = event.target.closest(selector);
    const bound = document.querySelector(selector);
    if (pressed && bound && pressed !== bound) {
      event.preventDefault();
      event.stopImmediatePropagation();
      bound.click();
      return;
    }
  }
}, true);
