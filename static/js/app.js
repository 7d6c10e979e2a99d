// Progressive enhancement only: every page works without this file.
(function () {
  // On a phone, fold the product filters away so the results come first;
  // keep them open when a filter is in use.
  var panel = document.querySelector("details.filters-panel[data-fold-on-phone]");
  if (panel && window.matchMedia("(max-width: 768px)").matches) {
    panel.open = false;
  }

  // Print buttons need script (the page's Content-Security-Policy allows no inline
  // handlers), so they stay hidden without it.
  document.querySelectorAll("button[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      window.print();
    });
  });
})();
