// chargegrid dashboard: keeps the server-rendered page live over Server-Sent Events.
//
// Rules (see chargegrid/web/dashboard.py):
// - Frequent changes are patched in place from the event data: connector badges
//   ([data-connector="charger/evse/connector"]), session power/energy/SoC
//   ([data-session] [data-field]), a charger's connection, version, vendor and last seen.
// - Changes of structure (a session starts or stops, a charger or connector appears, the
//   message log grows) re-fetch server-rendered rows: every element with data-kinds and
//   data-src is a region whose content is replaced by the fragment at data-src. No markup is
//   built here, so all escaping stays in the Jinja templates.
// - Each (re)connection resynchronises every region, so nothing published while the stream
//   was down (or before it was up) is missed. body[data-live] is "open" only after that.
// - Numbers are rounded like chargegrid/web/views.py does: floor(x + 0.5) on the same float.
(function () {
  "use strict";

  var body = document.body;
  var eventsUrl = body.getAttribute("data-events");
  if (!eventsUrl || typeof EventSource === "undefined") {
    return;
  }
  var pageCharger = body.getAttribute("data-charger") || "";
  var TOPICS = [
    "connector.status",
    "session.started", "session.updated", "session.stopped",
    "charger.connected", "charger.disconnected", "charger.booted",
    "bus.overflow",
  ];

  // -- formatting (mirrors views.py) ---------------------------------------------------------
  function kw(w) {
    return w === null || w === undefined ? "—" : (Math.floor(w / 100 + 0.5) / 10).toFixed(1);
  }
  function kwh(wh) {
    return wh === null || wh === undefined ? "—" : (Math.floor(wh / 10 + 0.5) / 100).toFixed(2);
  }
  function soc(p) {
    return p === null || p === undefined ? "—" : Math.floor(p + 0.5) + " %";
  }
  function when(d) {
    return isNaN(d.getTime()) ? "—" : d.toISOString().slice(0, 19).replace("T", " ");
  }

  // -- DOM helpers -------------------------------------------------------------------------------
  function quote(value) {
    var text = String(value);
    var escaped = window.CSS && CSS.escape ? CSS.escape(text) : text.replace(/["\\]/g, "\\$&");
    return '"' + escaped + '"';
  }
  function each(attr, value, fn) {
    var found = document.querySelectorAll("[" + attr + "=" + quote(value) + "]");
    for (var i = 0; i < found.length; i++) {
      fn(found[i]);
    }
    return found.length;
  }
  function setText(el, text) {
    if (el.textContent !== text) {
      el.textContent = text;
    }
  }
  function regions(kind) {
    return document.querySelectorAll("[data-kinds~=" + quote(kind) + "][data-src]");
  }

  // -- regions: re-fetch server-rendered rows ----------------------------------------------------
  // A fragment shows the server's state at some instant while it is on its way; an event that
  // arrives meanwhile may be newer than that. Such events are kept in a journal and patched
  // again onto the swapped-in rows, so a fetch never rewinds what an event already showed.
  var seq = 0;
  var journal = [];
  var inflight = 0;
  var timers = {};

  function fetchRegion(el) {
    var since = seq;
    inflight++;
    return fetch(el.getAttribute("data-src"), {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (r) {
        if (r.status === 401) {
          window.location.assign("/login");
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && el.innerHTML !== html) {
          el.innerHTML = html;
          journal.forEach(function (entry) {
            if (entry.seq > since) {
              patch(entry.topic, entry.data);
            }
          });
        }
      })
      .catch(function () { /* the next event or resync tries again */ })
      .then(function () {
        inflight--;
        if (inflight === 0) {
          journal = [];
        }
      });
  }

  function refresh(kind) {
    var found = regions(kind);
    var pending = [];
    for (var i = 0; i < found.length; i++) {
      pending.push(fetchRegion(found[i]));
    }
    return Promise.all(pending);
  }

  // At most one fetch per kind per delay, however many events arrive meanwhile.
  function schedule(kind, delay) {
    if (timers[kind] || regions(kind).length === 0) {
      return;
    }
    timers[kind] = window.setTimeout(function () {
      delete timers[kind];
      refresh(kind);
    }, delay);
  }

  function resync() {
    var seen = {};
    var all = document.querySelectorAll("[data-kinds][data-src]");
    var pending = [];
    for (var i = 0; i < all.length; i++) {
      var kind = all[i].getAttribute("data-kinds").split(" ")[0];
      if (!seen[kind]) {
        seen[kind] = true;
        pending.push(refresh(kind));
      }
    }
    return Promise.all(pending);
  }

  // -- in-place patches: each returns how many elements showed the change ------------------------
  function patchConnector(d) {
    var key = d.charger_id + "/" + d.evse_id + "/" + d.connector_id;
    var state = String(d.state || "").toLowerCase();
    var shown = each("data-connector", key, function (el) {
      setText(el, d.status);
      el.className = "badge s-" + state;
      if (d.error_code) {
        el.title = d.error_code;
      } else {
        el.removeAttribute("title");
      }
    });
    each("data-connector-error", key, function (el) { setText(el, d.error_code || "—"); });
    each("data-connector-updated", key, function (el) { setText(el, when(new Date(d.at))); });
    return shown;
  }

  function patchCharger(topic, d) {
    var id = d.charger_id;
    if (topic === "charger.connected" || topic === "charger.disconnected") {
      var on = topic === "charger.connected";
      each("data-charger-state", id, function (el) {
        setText(el, on ? "connected" : "offline");
        el.className = "pill " + (on ? "on" : "off");
      });
    }
    if (d.ocpp_version) {
      each("data-charger-version", id, function (el) {
        setText(el, String(d.ocpp_version).replace(/^ocpp/, ""));
      });
    }
    if (topic === "charger.booted") {
      each("data-charger-vendor", id, function (el) {
        setText(el, (d.vendor || "—") + " " + (d.model || ""));
      });
    }
    return each("data-charger-row", id, function () {});
  }

  function patchSession(d) {
    return each("data-session", String(d.session_id), function (row) {
      var cells = row.querySelectorAll("[data-field]");
      for (var i = 0; i < cells.length; i++) {
        var f = cells[i].getAttribute("data-field");
        if (f === "power") {
          setText(cells[i], kw(d.power_w));
        } else if (f === "energy") {
          setText(cells[i], kwh(d.energy_wh));
        } else if (f === "soc") {
          setText(cells[i], soc(d.soc_percent));
        }
      }
    });
  }

  function patch(topic, d) {
    if (topic === "connector.status") {
      return patchConnector(d);
    }
    if (topic === "session.updated" && d.status === "Active") {
      return patchSession(d);
    }
    if (topic.indexOf("charger.") === 0) {
      return patchCharger(topic, d);
    }
    return 0;
  }

  // -- event handling: patch, and re-fetch what a patch cannot show -------------------------------
  function relevant(chargerId) {
    return pageCharger === "" || pageCharger === chargerId;
  }

  function dispatch(topic, d) {
    if (topic === "bus.overflow") {
      resync(); // events were dropped for this reader: start again from the server's truth
      return;
    }
    seq++;
    if (inflight > 0) {
      journal.push({seq: seq, topic: topic, data: d});
    }
    var shown = patch(topic, d);
    var id = d.charger_id;
    if (id) {
      each("data-last-seen", id, function (el) { setText(el, when(new Date())); });
      if (pageCharger === id) {
        schedule("log", 500);
      }
    }
    if (topic === "connector.status") {
      var whole = d.evse_id === 0 && d.connector_id === 0;
      if (shown === 0 && relevant(id) && (!whole || pageCharger !== "")) {
        schedule("connectors", 200); // a connector the page has not shown yet
      }
    } else if (topic.indexOf("session.") === 0) {
      if (relevant(id) && (shown === 0 || topic !== "session.updated")) {
        schedule("sessions", 200); // a session starts or stops: rows come and go
        if (topic === "session.stopped") {
          schedule("completed", 200);
        }
      }
    } else if (topic.indexOf("charger.") === 0) {
      if (pageCharger === "" && shown === 0) {
        schedule("chargers", 200); // a charger this page has not listed yet
      }
      if (pageCharger === id && topic === "charger.booted") {
        schedule("details", 200);
      }
    }
    schedule("summary", 1000);
  }

  // -- the stream -----------------------------------------------------------------------------------
  var indicator = document.querySelector("[data-live-indicator]");
  function setLive(state, label) {
    body.setAttribute("data-live", state);
    if (indicator) {
      indicator.textContent = label;
      indicator.className = "live " + state;
    }
  }

  var source = null;
  var backoff = 1000;

  function connect() {
    setLive("connecting", "connecting");
    source = new EventSource(eventsUrl);
    source.onopen = function () {
      backoff = 1000;
      setLive("syncing", "syncing");
      resync().then(function () {
        if (source && source.readyState === EventSource.OPEN) {
          setLive("open", "live");
        }
      });
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (an HTTP error such as 401), so the browser will not
        // retry by itself: check the sign-in, then try again with a growing pause.
        source.close();
        source = null;
        setLive("offline", "reconnecting");
        fetch("/fragments/summary", {credentials: "same-origin"})
          .then(function (r) {
            if (r.status === 401) {
              window.location.assign("/login");
            }
          })
          .catch(function () {})
          .then(function () {
            window.setTimeout(connect, backoff);
            backoff = Math.min(backoff * 2, 15000);
          });
      } else {
        setLive("offline", "reconnecting"); // the browser retries on its own (server says retry: 2000)
      }
    };
    TOPICS.forEach(function (topic) {
      source.addEventListener(topic, function (ev) {
        var data = null;
        try {
          data = JSON.parse(ev.data);
        } catch (e) {
          return;
        }
        dispatch(topic, data || {});
      });
    });
  }

  // Regions that change without any event (the message log: heartbeats publish nothing).
  var periodic = document.querySelectorAll("[data-every][data-src]");
  for (var i = 0; i < periodic.length; i++) {
    (function (el) {
      var every = parseInt(el.getAttribute("data-every"), 10) || 3000;
      window.setInterval(function () {
        if (!document.hidden) {
          fetchRegion(el);
        }
      }, every);
    })(periodic[i]);
  }

  window.addEventListener("pagehide", function () {
    if (source) {
      source.close();
      source = null;
    }
  });
  window.addEventListener("pageshow", function (ev) {
    if (ev.persisted && source === null) {
      connect(); // back from the page cache: the stream was closed on the way out
    }
  });
  connect();
})();
