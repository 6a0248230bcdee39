// Reception-hall screen: live figures over server-sent events, engagements in rotation.
// The page is complete without this script; the script keeps it current. Whatever happens to
// the network, the last figures stay on screen with the time they were received.
(function () {
  "use strict";

  var body = document.body;
  var siteId = body.dataset.siteId;
  var zone = body.dataset.timezone || "Europe/Paris";
  var heartbeatMs = Number(body.dataset.heartbeatSeconds || 15) * 1000;
  var rotationMs = Number(body.dataset.rotationSeconds || 12) * 1000;
  var showPrevious = body.dataset.showPrevious === "true";
  var NBSP = "\u00a0";

  var OFFLINE_CACHE = "ecran-v1"; // the service worker's cache (sw.js)
  var STORE_KEY = "ecran:" + siteId;

  var source = null;
  var lastMessageAt = Date.now();
  // When the figures on screen were received: the page's own rendering time, which is older
  // than now when the page is a copy kept through a network cut.
  var lastFeedAt = Date.parse(body.dataset.renderedAt) || Date.now();
  var retryDelay = 1000;
  var retryTimer = null;
  var rotationTimer = null;
  var currentFeed = null;

  function parts(date, options) {
    var found = {};
    new Intl.DateTimeFormat("fr-FR", Object.assign({ timeZone: zone }, options))
      .formatToParts(date)
      .forEach(function (part) { found[part.type] = part.value; });
    return found;
  }

  // « 14 h 05 », in the site's time zone whatever the screen's clock says.
  function clockText(date) {
    var p = parts(date, { hour: "numeric", minute: "2-digit", hourCycle: "h23" });
    return Number(p.hour) + NBSP + "h" + NBSP + p.minute;
  }

  function dayKey(date) {
    var p = parts(date, { year: "numeric", month: "2-digit", day: "2-digit" });
    return p.year + "-" + p.month + "-" + p.day;
  }

  function updatedText(feed) {
    var when = new Date(feed.updated_at);
    if (dayKey(when) === dayKey(new Date())) {
      return "Mis à jour à " + feed.updated_at_text.time;
    }
    return "Mis à jour le " + feed.updated_at_text.date + " à " + feed.updated_at_text.time;
  }

  function paragraph(className, text) {
    var node = document.createElement("p");
    node.className = className;
    node.textContent = text;
    return node;
  }

  function figureItem(figure, previous) {
    var item = document.createElement("li");
    item.className = "figure";
    item.dataset.indicator = figure.id;
    item.appendChild(paragraph("figure__label", figure.label));
    if (figure.published) {
      item.appendChild(paragraph("figure__value", figure.text.value));
      item.appendChild(paragraph("figure__sample", figure.text.sample));
      if (figure.text.interval) {
        item.appendChild(paragraph("figure__interval", "Marge d'incertitude : " + figure.text.interval));
      }
      if (showPrevious && previous) {
        // The change says whether it is more than noise (contracts.figures, in the feed).
        var change = figure.text.change ? " · " + figure.text.change : "";
        item.appendChild(paragraph("figure__previous", "Période précédente : " + previous.text.value + change));
      }
    } else {
      item.appendChild(paragraph("figure__value figure__value--withheld", figure.text.status));
    }
    return item;
  }

  // A manager's new settings reach the screen with the feed, like the figures.
  function applyDisplay(display) {
    if (!display) { return; }
    showPrevious = display.show_previous !== false;
    var withEngagements = display.engagements !== false;
    document.querySelector(".screen__engagements").hidden = !withEngagements;
    body.classList.toggle("screen--no-engagements", !withEngagements);
    var wanted = Math.max(3000, Number(display.rotation_seconds || 12) * 1000);
    if (wanted !== rotationMs) {
      rotationMs = wanted;
      window.clearInterval(rotationTimer);
      rotationTimer = window.setInterval(rotateEngagements, rotationMs);
    }
  }

  function render(feed) {
    applyDisplay(feed.display);
    var list = document.getElementById("figures");
    var before = {};
    Array.prototype.forEach.call(list.querySelectorAll(".figure"), function (node) {
      before[node.dataset.indicator] = node.textContent;
    });
    var previousById = {};
    (feed.previous ? feed.previous.indicators : []).forEach(function (figure) {
      if (figure.published) { previousById[figure.id] = figure; }
    });
    var items = feed.current.indicators.map(function (figure) {
      var item = figureItem(figure, previousById[figure.id]);
      if (before[figure.id] !== undefined && before[figure.id] !== item.textContent) {
        item.classList.add("figure--updated");
      }
      return item;
    });
    list.replaceChildren.apply(list, items);
    list.dataset.count = String(items.length);
    document.getElementById("figures-empty").hidden = items.length > 0;
    document.getElementById("site-name").textContent = feed.site_name || feed.site_id;
    document.title = "Nos résultats de qualité de service – " + (feed.site_name || feed.site_id);
    document.getElementById("updated").textContent = updatedText(feed);
    currentFeed = feed;
  }

  function showConnection(problem) {
    var status = document.getElementById("connection");
    if (!problem) {
      status.hidden = true;
      status.textContent = "";
      return;
    }
    status.textContent = "Connexion interrompue : données reçues à " + clockText(new Date(lastFeedAt)) +
      ", reconnexion en cours.";
    status.hidden = false;
  }

  function scheduleReconnect() {
    if (retryTimer !== null) { return; }
    retryTimer = window.setTimeout(function () {
      retryTimer = null;
      connect();
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  }

  function connect() {
    if (source !== null) { source.close(); }
    source = new EventSource("/v1/sites/" + encodeURIComponent(siteId) + "/events");
    source.addEventListener("open", function () {
      retryDelay = 1000;
      lastMessageAt = Date.now();
      showConnection(false);
    });
    source.addEventListener("indicators", function (event) {
      lastMessageAt = lastFeedAt = Date.now();
      showConnection(false);
      try {
        render(JSON.parse(event.data));
        remember(currentFeed);
      } catch (error) {
        // A feed we cannot read must not blank the screen: keep what is shown.
        if (window.console) { window.console.error("feed not shown", error); }
      }
    });
    source.addEventListener("ping", function () {
      lastMessageAt = Date.now();
      showConnection(false);
    });
    source.addEventListener("error", function () {
      showConnection(true);
      // CONNECTING: the browser retries by itself. CLOSED (an HTTP error): we retry, slower.
      if (source.readyState === EventSource.CLOSED) { scheduleReconnect(); }
    });
  }

  // A half-open connection (a cut cable behind a proxy) raises no error: no ping for three
  // heartbeats means the stream is dead.
  function watchdog() {
    if (Date.now() - lastMessageAt > 3 * heartbeatMs) {
      showConnection(true);
      lastMessageAt = Date.now();
      connect();
    }
    if (currentFeed) {  // "à 14 h 05" becomes "le … à 14 h 05" after midnight
      document.getElementById("updated").textContent = updatedText(currentFeed);
    }
  }

  function rotateEngagements() {
    var items = document.querySelectorAll("#engagements .engagement");
    if (items.length < 2) { return; }
    var shown = 0;
    items.forEach(function (item, index) { if (!item.hidden) { shown = index; } });
    items[shown].hidden = true;
    items[(shown + 1) % items.length].hidden = false;
  }

  // The last feed received, kept for a reload during a network cut.
  function remember(feed) {
    try {
      window.localStorage.setItem(STORE_KEY, JSON.stringify({ feed: feed, receivedAt: lastFeedAt }));
    } catch (error) { /* storage full or refused: the screen still works */ }
  }

  function recall() {
    try {
      var kept = JSON.parse(window.localStorage.getItem(STORE_KEY) || "null");
      return kept && kept.feed && kept.feed.site_id === siteId ? kept : null;
    } catch (error) {
      return null;
    }
  }

  // Fresher figures kept by an earlier page than those this page came with: show them.
  function showKeptFigures() {
    var kept = recall();
    var pageUpdatedAt = Date.parse(body.dataset.updatedAt) || 0;
    if (kept && Date.parse(kept.feed.updated_at) > pageUpdatedAt) {
      try {
        render(kept.feed);
        lastFeedAt = kept.receivedAt;
      } catch (error) { /* keep the page as it came */ }
    }
  }

  // The service worker serves the last copy of this page and its assets when the network does
  // not answer; the page fills its cache at once rather than waiting for a second visit.
  function keepForOffline() {
    if (!("serviceWorker" in navigator) || !window.caches) { return; }
    navigator.serviceWorker.register("/display/sw.js")
      .then(function () { return navigator.serviceWorker.ready; })
      .then(function () {
        var urls = [window.location.href];
        document.querySelectorAll("link[rel=stylesheet], link[rel=icon], script[src]")
          .forEach(function (node) { urls.push(node.href || node.src); });
        return window.caches.open(OFFLINE_CACHE).then(function (cache) { return cache.addAll(urls); });
      })
      .then(function () { body.dataset.offlineReady = "true"; })
      .catch(function () { /* only a reload during a cut is affected: it shows the browser's page */ });
  }

  if (!siteId) { return; }
  showKeptFigures();
  keepForOffline();
  connect();
  window.setInterval(watchdog, Math.max(1000, heartbeatMs / 3));
  rotationMs = Math.max(3000, rotationMs);
  rotationTimer = window.setInterval(rotateEngagements, rotationMs);
  window.addEventListener("beforeunload", function () {
    if (source !== null) { source.close(); }
    window.clearInterval(rotationTimer);
  });
})();
