/* With JavaScript on, the survey shows one step at a time, with "Suivant" and "Précédent".
   Without it the server-rendered page shows every step and works the same: nothing here is
   needed to answer. External file, loaded with `defer`: the CSP forbids inline scripts and
   nothing blocks the first paint. */
(function () {
  "use strict";
  var form = document.querySelector(".survey-form");
  var summary = document.getElementById("erreurs");
  if (summary) {  // after a refused submission: the whole page, errors first
    summary.focus();
    return;
  }
  if (!form) return;
  var steps = Array.prototype.slice.call(form.querySelectorAll(".survey-step"));
  var send = form.querySelector("[data-send]");
  if (steps.length < 2 || !send) return;
  var current = 0;
  var sent = false;

  function button(text, className) {
    var element = document.createElement("button");
    element.type = "button";
    element.className = className;
    element.textContent = text;
    return element;
  }

  function listItem(element) {
    var item = document.createElement("li");
    item.appendChild(element);
    return item;
  }

  // In the buttons' list, the step's main action first: Suivant (or Envoyer), then Précédent.
  var next = listItem(button("Suivant", "fr-btn"));
  var back = listItem(button("Précédent", "fr-btn fr-btn--secondary"));
  send.parentNode.insertBefore(next, send);
  send.parentNode.insertBefore(back, send.nextSibling);

  function focusStep(step) {
    // The step's question, so a screen reader reads it with "Étape n sur N".
    var target = step.querySelector("fieldset, textarea");
    if (!target) return;
    if (target.tagName === "FIELDSET") target.setAttribute("tabindex", "-1");
    target.focus();
  }

  function show(index, moveFocus) {
    current = index;
    steps.forEach(function (step, position) { step.hidden = position !== index; });
    var last = index === steps.length - 1;
    next.hidden = last;
    back.hidden = index === 0;
    send.hidden = !last;
    if (moveFocus) focusStep(steps[index]);
  }

  function unanswered(step) {
    var groups = step.querySelectorAll("fieldset[data-required]");
    for (var i = 0; i < groups.length; i += 1) {
      if (!groups[i].querySelector("input:checked")) return groups[i];
    }
    return null;
  }

  function flag(group) {
    var id = "e-" + group.getAttribute("data-item");
    var messages = document.getElementById(id);
    var message = document.createElement("p");
    message.className = "fr-message fr-message--error";
    message.textContent = "Merci de choisir une réponse pour continuer.";
    messages.textContent = "";
    messages.appendChild(message);
    group.classList.add("fr-fieldset--error");
    var described = group.getAttribute("aria-describedby") || "";
    if (described.split(" ").indexOf(id) < 0) group.setAttribute("aria-describedby", (described + " " + id).trim());
    group.setAttribute("tabindex", "-1");
    group.focus();
  }

  function forward() {
    var group = unanswered(steps[current]);
    if (group) flag(group);
    else show(current + 1, true);
  }

  form.addEventListener("change", function (event) {
    var group = event.target.closest("fieldset[data-required]");
    if (!group || !group.classList.contains("fr-fieldset--error")) return;
    group.classList.remove("fr-fieldset--error");
    document.getElementById("e-" + group.getAttribute("data-item")).textContent = "";
  });
  next.firstChild.addEventListener("click", forward);
  back.firstChild.addEventListener("click", function () { show(current - 1, true); });
  form.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    if (submitter && submitter.value === "save") return;  // a draft may be saved at any step
    if (current < steps.length - 1) {  // Enter in a question means "Suivant"
      event.preventDefault();
      forward();
      return;
    }
    if (sent) event.preventDefault();  // a double tap sends once
    sent = true;
  });
  show(0, false);
})();
