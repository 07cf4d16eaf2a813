// Gatekeeper console: refresh the page's content in place every few seconds.
// The page is fetched again (same URL, same cookie) and its <main> swapped in, unless the
// operator is typing in a form: a refresh never eats a half-typed confirmation.
"use strict";
(function () {
  var meta = document.querySelector('meta[name="gk-refresh"]');
  if (!meta) { return; }
  var seconds = parseInt(meta.getAttribute("content"), 10);
  if (!(seconds > 0)) { return; }

  function busy() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("main form")) { return true; }
    var inputs = document.querySelectorAll("main form input[name=confirm]");
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].value) { return true; }
    }
    return false;
  }

  function stamp(text) {
    var node = document.getElementById("refreshed");
    if (node) { node.textContent = text; }
  }

  function refresh() {
    if (busy() || document.hidden) { return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.redirected && response.url.indexOf("/console/login") !== -1) {
          window.location.assign(response.url);
          return null;
        }
        if (!response.ok) { stamp("Refresh failed (" + response.status + "); retrying"); return null; }
        return response.text();
      })
      .then(function (text) {
        if (text === null || busy()) { return; }
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("main");
        var main = document.getElementById("main");
        if (fresh && main) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes));
          stamp("Updated " + new Date().toLocaleTimeString());
        }
      })
      .catch(function () { stamp("Refresh failed (connection); retrying"); });
  }

  window.setInterval(refresh, seconds * 1000);
})();
