// The session page, live: follows the event stream and drives the pause/resume/kill controls.
// Everything from the board is inserted as text; only the synthesis is HTML, and that comes
// already sanitised from the server.
(function () {
  "use strict";

  var state = JSON.parse(document.getElementById("session-state").textContent);
  var csrfToken = document.querySelector('meta[name="csrf-token"]').content;

  // The event vocabulary and status groups, as the server defines them (vocabulary.for_pages).
  var vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
  var FINISHED = vocabulary.finished_statuses;
  var TERMINAL = vocabulary.terminal_events;
  var EVENT_TYPES = vocabulary.event_types;
  // The phase each event moves the session into (the worker's bookkeeping does the same).
  var EVENT_PHASES = vocabulary.event_phases;
  // Events of the lifecycle rather than of the board's work: they do not mean the board runs.
  var CONTROL_EVENTS = vocabulary.control_events;

  function byId(id) { return document.getElementById(id); }
  function isFinished(status) { return FINISHED.indexOf(status) !== -1; }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function phaseLabel(phase) {
    var words = String(phase || "").replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }
  function money(value) {
    var number = Number(value);
    return isNaN(number) ? String(value) : "$" + number.toFixed(4);
  }

  // A safe subset of Markdown for live contributions (paragraphs, lists, **strong**, *em*,
  // `code`), built from text nodes only. A reload renders the full Markdown on the server.
  var INLINE = /(\*\*[^*\n]+\*\*|`[^`\n]+`|\*[^*\s][^*\n]*\*|\b_[^_\s][^_\n]*_\b)/g;
  var LIST_ITEM = /^\s*([-*+]|\d+[.)])\s+/;

  function renderInline(parent, text) {
    var last = 0;
    var match;
    INLINE.lastIndex = 0;
    while ((match = INLINE.exec(text))) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var token = match[0];
      if (token.slice(0, 2) === "**") parent.appendChild(el("strong", null, token.slice(2, -2)));
      else if (token[0] === "`") parent.appendChild(el("code", null, token.slice(1, -1)));
      else parent.appendChild(el("em", null, token.slice(1, -1)));
      last = match.index + token.length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderLiteMarkdown(container, text) {
    String(text || "").split(/\n\s*\n/).forEach(function (block) {
      var lines = block.split("\n").filter(function (line) { return line.trim(); });
      if (!lines.length) return;
      if (lines.every(function (line) { return LIST_ITEM.test(line); })) {
        var list = el(/^\s*\d/.test(lines[0]) ? "ol" : "ul");
        lines.forEach(function (line) {
          var item = el("li");
          renderInline(item, line.replace(LIST_ITEM, ""));
          list.appendChild(item);
        });
        container.appendChild(list);
        return;
      }
      var paragraph = el("p");
      renderInline(paragraph, lines.map(function (line) { return line.replace(/^#+\s+/, "").trim(); }).join(" "));
      container.appendChild(paragraph);
    });
  }

  // -- status, phase, numbers ------------------------------------------------------------------

  function setStatus(status, pauseReason) {
    if (!status) return;
    // A finished session never goes back, whatever a late or cached answer says.
    if (isFinished(state.status) && !isFinished(status)) return;
    state.status = status;
    state.pause_reason = status === "paused" ? (pauseReason || state.pause_reason) : null;
    var badge = byId("session-status");
    badge.textContent = status + (state.pause_reason ? " (" + state.pause_reason + ")" : "");
    badge.className = "badge badge--" + status;
    document.querySelector(".session").dataset.status = status;
    if (status !== "paused" || state.pause_reason !== "clarification") hideClarification();
    updateControls();
  }

  function setPhase(phase) {
    if (!phase) return;
    state.phase = phase;
    byId("session-phase").textContent = phaseLabel(phase);
    var index = vocabulary.phases.indexOf(phase);
    if (index !== -1) byId("session-progress").value = index + 1;
  }

  function setRound(round) {
    if (typeof round === "number") byId("session-round").textContent = String(round);
  }

  function setCosts(cost, tokens) {
    if (cost !== undefined && cost !== null) {
      byId("session-cost").textContent = money(cost);
      byId("cost-total").textContent = money(cost);
    }
    if (tokens !== undefined && tokens !== null) {
      byId("session-tokens").textContent = String(tokens);
      byId("cost-tokens").textContent = String(tokens);
    }
  }

  function updateControls() {
    var s = state.status;
    var visible = {
      start: s === "created",
      pause: s === "running",
      resume: s === "paused" && state.pause_reason !== "clarification",
      kill: ["created", "queued", "running", "paused"].indexOf(s) !== -1,
    };
    Object.keys(visible).forEach(function (action) {
      var button = document.querySelector('[data-action="' + action + '"]');
      button.hidden = !visible[action];
      button.disabled = false;
    });
  }

  // -- the transcript, the board, the votes ---------------------------------------------------

  function roundSection(data) {
    var sub = typeof data.sub_problem_index === "number" ? data.sub_problem_index : 0;
    var round = typeof data.round === "number" ? data.round : 1;
    var key = sub + ":" + round;
    var transcript = byId("transcript");
    var section = transcript.querySelector('[data-round-key="' + key + '"]');
    if (section) return section.querySelector(".contributions");
    var title = (state.several_sub_problems || sub > 0 ? "Sub-problem " + (sub + 1) + " · " : "") +
      "Round " + round;
    section = el("section", "round");
    section.dataset.roundKey = key;
    section.setAttribute("aria-label", title.replace(" · ", ", "));
    section.appendChild(el("h3", "round__title", title));
    var list = el("ol", "contributions");
    section.appendChild(list);
    transcript.appendChild(section);
    byId("transcript-empty").hidden = true;
    return list;
  }

  function addContribution(data, event) {
    var list = roundSection(data);
    if (list.querySelector('[data-sequence="' + event.sequence + '"]')) return;
    var item = el("li", "contribution");
    item.dataset.sequence = event.sequence;
    item.appendChild(el("h4", "contribution__author", data.persona_name || data.persona_code));
    var content = el("div", "contribution__content prose");
    renderLiteMarkdown(content, data.content);
    item.appendChild(content);
    list.appendChild(item);
  }

  function addMember(data) {
    var sub = typeof data.sub_problem_index === "number" ? data.sub_problem_index : 0;
    var board = byId("board");
    var selector = '[data-persona="' + CSS.escape(String(data.persona_code)) +
      '"][data-sub-problem="' + sub + '"]';
    if (board.querySelector(selector)) return;
    var item = el("li", "member");
    item.dataset.persona = data.persona_code;
    item.dataset.subProblem = sub;
    item.appendChild(el("h3", "member__name", data.persona_name || data.persona_code));
    var role = [data.archetype, data.domain].filter(Boolean).join(" · ");
    if (state.several_sub_problems || sub > 0) role += " · sub-problem " + (sub + 1);
    item.appendChild(el("p", "member__role", role));
    if (data.expertise && data.expertise.length) {
      var expertise = el("p", "member__expertise");
      expertise.appendChild(el("span", "visually-hidden", "Expertise: "));
      expertise.appendChild(document.createTextNode([].concat(data.expertise).join(", ")));
      item.appendChild(expertise);
    }
    if (data.rationale) item.appendChild(el("p", "member__rationale", data.rationale));
    board.appendChild(item);
    byId("board-empty").hidden = true;
  }

  function confidencePercent(value) {
    var number = Number(value);
    if (value === null || value === undefined || isNaN(number)) return null;
    number = number <= 1 ? number * 100 : number;
    return Math.round(Math.max(0, Math.min(number, 100)));
  }

  function addVote(data) {
    var item = el("li", "vote");
    var who = el("p", "vote__who");
    who.appendChild(el("strong", null, data.persona_name || data.persona_code));
    var percent = confidencePercent(data.confidence);
    if (percent !== null) {
      var confidence = el("span", "vote__confidence");
      var meter = el("meter", null, percent + "%");
      meter.min = 0;
      meter.max = 100;
      meter.value = percent;
      meter.setAttribute("aria-label", "Confidence");
      confidence.appendChild(meter);
      confidence.appendChild(document.createTextNode(" " + percent + "% confident"));
      who.appendChild(document.createTextNode(" "));
      who.appendChild(confidence);
    }
    item.appendChild(who);
    item.appendChild(el("p", "vote__recommendation", data.recommendation));
    var conditions = [].concat(data.conditions || []).filter(Boolean);
    if (conditions.length) {
      var list = el("ul", "vote__conditions");
      list.setAttribute("aria-label", "Conditions");
      conditions.forEach(function (c) { list.appendChild(el("li", null, c)); });
      item.appendChild(list);
    }
    byId("votes").appendChild(item);
    byId("votes-empty").hidden = true;
  }

  function addConsensus(data) {
    var box = byId("consensus");
    var sub = data.sub_problem_index;
    var label = "Consensus" +
      (state.several_sub_problems && typeof sub === "number" ? " (sub-problem " + (sub + 1) + ")" : "") +
      ": ";
    var span = el("span", null, label);
    span.appendChild(el("strong", null, data.consensus_level));
    box.appendChild(span);
    box.appendChild(document.createTextNode(" "));
    box.hidden = false;
  }

  // -- clarification ---------------------------------------------------------------------------

  function showClarification(question) {
    byId("clarification-question").textContent = question || "";
    byId("clarification").hidden = false;
  }
  function hideClarification() { byId("clarification").hidden = true; }

  // -- reading from the server -----------------------------------------------------------------

  function loadSynthesis(fallbackText) {
    return fetch(state.urls.synthesis, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        byId("synthesis").innerHTML = html; // sanitised by the server (nh3)
      })
      .catch(function () {
        if (fallbackText) {
          var box = byId("synthesis");
          box.textContent = "";
          box.appendChild(el("p", "prose plain", fallbackText));
        }
      });
  }

  var refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      fetch(state.urls.detail, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (detail) {
          if (!detail) return;
          setStatus(detail.status, detail.pause_reason);
          if (!isFinished(state.status) || detail.status === state.status) setPhase(detail.phase);
          setRound(detail.round_number);
          setCosts(detail.total_cost, detail.total_tokens);
          if (detail.status === "paused" && detail.pause_reason === "clarification" && detail.pending_clarification) {
            showClarification(detail.pending_clarification);
          }
        })
        .catch(function () { /* the next event refreshes again */ });
    }, 400);
  }

  // -- the live stream -------------------------------------------------------------------------

  var liveStatus = byId("live-status");
  var source = null;

  var handlers = {
    session_started: function () { setStatus("running"); },
    persona_selected: addMember,
    initial_round_started: function (data) { setRound(data.round); },
    round_started: function (data) { setRound(data.round); },
    contribution: addContribution,
    persona_vote: addVote,
    voting_complete: addConsensus,
    paused: function (data) { setStatus("paused", data.reason); },
    resumed: function () { setStatus("queued"); },
    clarification_answered: function () { hideClarification(); setStatus("queued"); },
    clarification_requested: function (data) { showClarification(data.question); },
    killed: function () { setStatus("killed"); },
    error: function (data) {
      setStatus("failed");
      byId("error-message").textContent = (data.message || "Unknown error") + (data.code ? " (" + data.code + ")" : "");
      byId("error-box").hidden = false;
    },
    complete: function (data) {
      setStatus("completed");
      setPhase("complete");
      setCosts(data.total_cost, data.total_tokens);
      loadSynthesis(data.synthesis);
    },
  };

  function onEvent(message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    state.last_sequence = Math.max(state.last_sequence, event.sequence);
    var type = event.event_type;
    var data = event.data || {};
    // The worker picks up a queued session without an event of its own: any engine event
    // means it runs.
    if ((state.status === "queued" || state.status === "created") && CONTROL_EVENTS.indexOf(type) === -1) {
      setStatus("running");
    }
    if (EVENT_PHASES[type]) setPhase(EVENT_PHASES[type]);
    if (handlers[type]) handlers[type](data, event);
    if (TERMINAL.indexOf(type) !== -1) {
      source.close();
      liveStatus.textContent = "The deliberation has ended.";
    }
    scheduleRefresh();
  }

  function connect() {
    source = new EventSource(state.urls.stream + "?after=" + state.last_sequence);
    source.onopen = function () { liveStatus.textContent = "Live: new contributions appear as they are made."; };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        liveStatus.textContent = "Live updates stopped. Reload the page to reconnect.";
      } else {
        liveStatus.textContent = "Reconnecting to live updates…";
      }
    };
    EVENT_TYPES.forEach(function (type) { source.addEventListener(type, onEvent); });
  }

  // -- controls --------------------------------------------------------------------------------

  var message = byId("control-message");

  function control(action, body) {
    var buttons = document.querySelectorAll(".controls [data-action]");
    buttons.forEach(function (b) { b.disabled = true; });
    message.textContent = "";
    return fetch(state.urls[action], {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
      body: JSON.stringify(body || {}),
    })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.status === 202) {
            setStatus(data.status, data.pause_reason);
            message.textContent = {
              start: "Started: the board is being convened.",
              pause: "Paused. The board stops after the current step.",
              resume: "Resumed.",
              kill: "Killed. The deliberation has stopped.",
              clarify: "Answer sent; the deliberation continues.",
            }[action];
            if (!source && !isFinished(state.status)) connect();
          } else {
            message.textContent = data.detail || "That did not work (HTTP " + response.status + ").";
            scheduleRefresh();
          }
          return response.status;
        });
      })
      .catch(function () {
        message.textContent = "The server could not be reached. Try again.";
      })
      .finally(updateControls);
  }

  document.querySelectorAll(".controls [data-action]").forEach(function (button) {
    button.addEventListener("click", function () {
      var action = button.dataset.action;
      if (action === "kill" && !window.confirm("Kill this deliberation? It cannot be resumed.")) return;
      control(action, action === "kill" ? { reason: "killed from the dashboard" } : {});
    });
  });

  byId("clarification-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var answer = byId("clarification-answer").value.trim();
    if (!answer) {
      byId("clarification-answer").focus();
      return;
    }
    control("clarify", { answer: answer }).then(function (status) {
      if (status === 202) {
        byId("clarification-answer").value = "";
        hideClarification();
      }
    });
  });

  updateControls();
  if (!isFinished(state.status)) {
    connect();
  }
})();
