// The reception-hall screen's service worker. A screen reloaded during a network cut (a power
// blip, a nightly reload) must show its last figures, not the browser's error page: the page and
// its styles and scripts come from the network when it answers and from the last copy when it
// does not. The figures themselves come from the copy of the page and from the last feed the
// page kept (display.js). The event stream and the feeds always go to the network.
"use strict";

var CACHE = "ecran-v1"; // display.js fills the same cache right after registering

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (keys) {
      return Promise.all(keys.filter(function (key) { return key !== CACHE; })
        .map(function (key) { return caches.delete(key); }));
    }).then(function () { return self.clients.claim(); })
  );
});

function keptForOffline(request) {
  var url = new URL(request.url);
  return request.method === "GET" && url.origin === self.location.origin &&
    (request.mode === "navigate" || url.pathname.indexOf("/static/") === 0);
}

function lastCopy(request, fallback) {
  return caches.match(request).then(function (cached) { return cached || fallback; });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (!keptForOffline(request)) { return; }
  event.respondWith(
    fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { return cache.put(request, copy); });
        return response;
      }
      // A proxy's 502 during an outage is no better than no answer.
      return response.status >= 500 ? lastCopy(request, response) : response;
    }, function () {
      return lastCopy(request, Response.error());
    })
  );
});
