// Newswire console: the live alerts list. Served from /static under a CSP without 'unsafe-inline'.
// Untrusted text only ever goes into textContent; a link gets an href only when the server said it
// is http(s) (the `href` field) and the URL parser agrees.
"use strict";

(function () {
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function bdi(text) { return el("bdi", null, text); }

  function safeHref(href) {
    if (typeof href !== "string") { return null; }
    try {
      var url = new URL(href);
      return (url.protocol === "http:" || url.protocol === "https:") ? url.href : null;
    } catch (e) { return null; }
  }

  function alertNode(a, section) {
    var article = el("article", "alert severity-" + String(a.severity).replace(/[^a-z]/g, ""));
    article.dataset.alertId = a.alert_id;
    article.classList.add("fresh");
    var h2 = el("h2");
    h2.append(el("span", "severity", a.severity), " ", bdi(a.rule), " ", el("span", "kind", a.kind));
    var summary = el("p", "summary");
    summary.append(bdi(a.summary));
    var meta = el("p", "meta", "fired " + a.fired_at + " · window " + a.window + " · ");
    meta.append(el("span", "counts", a.counts.events + " events, " + a.counts.stories + " stories, " +
                   a.counts.sources + " sources"));
    var list = el("ul", "evidence");
    a.evidence.forEach(function (e) {
      var li = el("li");
      var own = el("a");
      own.href = "/events/" + encodeURIComponent(e.event_id);
      own.append(bdi(e.title));
      li.append(own, " ", el("span", "source", e.source), " ");
      var href = safeHref(e.href);
      if (href) {
        var link = el("a");
        link.href = href;
        link.rel = "noopener noreferrer nofollow";
        link.target = "_blank";
        link.append(bdi("article"));
        li.append(link);
      } else if (e.url) {
        var span = el("span", "unsafe-url");
        span.title = "not an http(s) link: shown as text";
        span.append(bdi(e.url));
        li.append(span);
      }
      list.append(li);
    });
    article.append(h2, summary, meta, list);
    if (a.snoozed_until) {
      article.classList.add("snoozed");
      article.append(el("p", "snoozed-note", "rule snoozed until " + a.snoozed_until));
    }
    if (section.dataset.operator === "yes") {
      var form = el("form", "inline ack");
      form.method = "post";
      form.action = "/alerts/" + encodeURIComponent(a.alert_id) + "/ack";
      var csrf = el("input");
      csrf.type = "hidden";
      csrf.name = "csrf";
      csrf.value = section.dataset.csrf;
      var button = el("button", null, "Acknowledge");
      button.type = "submit";
      form.append(csrf, button);
      article.append(form);
      if (!a.snoozed_until) {
        var snooze = el("form", "inline snooze");
        snooze.method = "post";
        snooze.action = "/alerts/snooze";
        [["csrf", section.dataset.csrf], ["rule", a.rule_value]].forEach(function (field) {
          var input = el("input");
          input.type = "hidden";
          input.name = field[0];
          input.value = field[1];
          snooze.append(input);
        });
        var minutes = Number(section.dataset.snoozeMinutes);
        var snoozeButton = el("button", null, "Snooze rule " + (minutes / 60) + " h");
        snoozeButton.type = "submit";
        snoozeButton.name = "minutes";
        snoozeButton.value = String(minutes);
        snooze.append(snoozeButton);
        article.append(snooze);
      }
    }
    return article;
  }

  function liveAlerts() {
    var section = document.getElementById("alerts");
    if (!section || !window.EventSource) { return; }
    var status = document.getElementById("live");
    var source = new EventSource(section.dataset.stream);
    function show(state) { if (status) { status.dataset.state = state; status.textContent = state; } }
    source.addEventListener("open", function () { show("live"); });
    source.addEventListener("error", function () { show("reconnecting"); });
    source.addEventListener("alert", function (message) {
      var a;
      try { a = JSON.parse(message.data); } catch (e) { return; }
      var known = section.querySelectorAll("article.alert");
      for (var i = 0; i < known.length; i++) {
        if (known[i].dataset.alertId === a.alert_id) { return; }
      }
      var empty = section.querySelector(".empty");
      if (empty) { empty.remove(); }
      section.prepend(alertNode(a, section));
    });
  }

  document.addEventListener("DOMContentLoaded", liveAlerts);
})();
