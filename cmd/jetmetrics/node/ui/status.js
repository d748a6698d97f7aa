// The jetmetrics status page without this script is complete; with it,
// its sections refresh in place every few seconds (re-reading the page
// itself, so the server renders everything, sparklines included) and
// times read "12 s ago" as they pass.
(function () {
  "use strict";

  var body = document.body;
  var every = parseInt(body.getAttribute("data-refresh-ms"), 10) || 5000;
  var status = document.getElementById("refresh-status");
  var refreshes = 0;
  var lastRefresh = null;

  function ago(seconds) {
    if (seconds < 0) { return "just now"; }
    if (seconds < 60) { return Math.floor(seconds) + " s ago"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min ago"; }
    if (seconds < 172800) { return Math.floor(seconds / 3600) + " h ago"; }
    return Math.floor(seconds / 86400) + " d ago";
  }

  function tick() {
    var now = Date.now();
    var times = document.querySelectorAll("time[data-rel]");
    for (var i = 0; i < times.length; i++) {
      var at = Date.parse(times[i].getAttribute("datetime"));
      if (!isNaN(at)) {
        times[i].title = new Date(at).toLocaleString();
        times[i].textContent = ago((now - at) / 1000);
      }
    }
    if (status && lastRefresh !== null && !status.classList.contains("failed")) {
      status.textContent = "· live, updated " + ago((now - lastRefresh) / 1000);
    }
  }

  function failed(why) {
    if (status) {
      status.classList.add("failed");
      status.textContent = "· refresh failed (" + why + "), retrying";
    }
  }

  function refresh() {
    if (document.hidden) { return; }
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" }
    }).then(function (resp) {
      if (!resp.ok) { throw new Error(resp.status + " " + resp.statusText); }
      return resp.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      var sections = document.querySelectorAll("[data-refresh]");
      for (var i = 0; i < sections.length; i++) {
        var next = fresh.getElementById(sections[i].id);
        if (next) { sections[i].replaceWith(document.importNode(next, true)); }
      }
      refreshes++;
      body.setAttribute("data-refreshes", String(refreshes));
      lastRefresh = Date.now();
      if (status) { status.classList.remove("failed"); }
      tick();
    }).catch(function (err) {
      failed(err && err.message ? err.message : String(err));
    });
  }

  document.documentElement.classList.add("js");
  lastRefresh = Date.now();
  tick();
  setInterval(tick, 1000);
  setInterval(refresh, every);
})();
