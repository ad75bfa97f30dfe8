// The session list: keeps the status, phase, round and cost of running sessions up to date.
(function () {
  "use strict";

  var POLL_MS = 3000;
  // Phases and the live statuses, as the server defines them (vocabulary.for_pages).
  var vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
  var PHASES = vocabulary.phases;
  var LIVE = vocabulary.live_statuses;

  function phaseLabel(phase) {
    var words = String(phase || "").replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function setField(card, name, text) {
    var node = card.querySelector('[data-field="' + name + '"]');
    if (node && node.textContent !== text) node.textContent = text;
    return node;
  }

  function update(card, detail) {
    var status = detail.status;
    var badge = setField(card, "status", status + (detail.pause_reason ? " (" + detail.pause_reason + ")" : ""));
    if (badge) badge.className = "badge badge--" + status;
    card.dataset.status = status;
    setField(card, "phase", phaseLabel(detail.phase));
    setField(card, "round_number", String(detail.round_number));
    setField(card, "total_cost", "$" + Number(detail.total_cost).toFixed(4));
    var progress = card.querySelector('[data-field="progress"]');
    if (progress) {
      var bar = progress.querySelector("progress");
      var index = PHASES.indexOf(detail.phase);
      if (index !== -1) bar.value = index + 1;
      if (LIVE.indexOf(status) === -1) progress.hidden = true;
    }
    if (LIVE.indexOf(status) === -1) delete card.dataset.live;
  }

  function poll() {
    var cards = document.querySelectorAll('.session-card[data-live="true"]');
    if (!cards.length) return;
    var pending = Array.prototype.map.call(cards, function (card) {
      return fetch("/api/v1/sessions/" + encodeURIComponent(card.dataset.sessionId), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (detail) { if (detail) update(card, detail); })
        .catch(function () { /* try again next time */ });
    });
    Promise.all(pending).then(function () {
      if (document.querySelector('.session-card[data-live="true"]')) setTimeout(poll, POLL_MS);
    });
  }

  setTimeout(poll, POLL_MS);
})();
