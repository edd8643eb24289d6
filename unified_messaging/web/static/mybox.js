// Mybox's only script: progressive enhancement, every page works without it.
// 1. An element with data-refresh="N" is fetched again every N seconds while the page is visible
//    (a file waiting for MyCareNet's answers updates itself); it stops once nothing is pending.
// 2. A form with data-confirm asks before it is sent.
(function () {
  "use strict";
  function refresh(element) {
    var seconds = parseInt(element.getAttribute("data-refresh"), 10) || 10;
    window.setTimeout(function tick() {
      if (document.hidden) { window.setTimeout(tick, seconds * 1000); return; }
      fetch(window.location.href, {credentials: "same-origin", headers: {"X-Requested-With": "mybox"}})
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(element.id);
          if (!fresh) { return; }
          element.innerHTML = fresh.innerHTML;
          var status = document.querySelector("[data-refresh-status]");
          var freshStatus = new DOMParser().parseFromString(html, "text/html").querySelector("[data-refresh-status]");
          if (status && freshStatus) { status.innerHTML = freshStatus.innerHTML; }
          if (fresh.hasAttribute("data-refresh")) { window.setTimeout(tick, seconds * 1000); }
          else { element.removeAttribute("data-refresh"); }
        })
        .catch(function () { window.setTimeout(tick, seconds * 3000); });
    }, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-refresh][id]"), refresh);
    Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
}());
