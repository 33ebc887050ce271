// The alerts page's live updates: every few seconds, ask for the rows newer than the
// newest shown (the server renders them as it renders the page) and put them on top.
// The page works without this file: reloading shows the same rows.
(function () {
  "use strict";

  var table = document.getElementById("alerts");
  if (!table || !window.fetch) return;
  var body = table.tBodies[0];
  var status = document.getElementById("live-status");
  var empty = document.getElementById("no-alerts");
  var url = table.dataset.rowsUrl;
  var lastId = parseInt(table.dataset.lastId, 10) || 0;
  var every = (parseInt(table.dataset.pollSeconds, 10) || 3) * 1000;
  var fresh = 0;
  var MAX_ROWS = 500;

  function say(text) {
    if (status) status.textContent = text;
  }

  function poll() {
    fetch(url + "after_id=" + lastId, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        if (data.count > 0) {
          body.insertAdjacentHTML("afterbegin", data.html);
          lastId = data.last_id;
          fresh += data.count;
          if (empty) empty.hidden = true;
          while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
          say(status.dataset.textNew.replace("{num}", String(fresh)));
        } else if (status && status.textContent === status.dataset.textOffline) {
          say("");
        }
      })
      .catch(function () {
        say(status ? status.dataset.textOffline : "");
      })
      .then(function () {
        window.setTimeout(poll, every);
      });
  }

  window.setTimeout(poll, every);
})();
