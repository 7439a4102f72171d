// PharmaCRM keyboard shortcuts for the service desk (no framework). Queues: j/k or ↓/↑ move between
// tickets, Enter or o opens one, x ticks it for a bulk action, / goes to the search field. Ticket page:
// r reply, n internal note, a assign, e resolve. ? shows the help (its text lives in the page, translated).
// Nothing fires while the user types in a field or holds Ctrl, Alt or Meta; without this script every
// action is still a link or a button.
(function () {
  "use strict";
  if (window.pharmacrmKeys) return; // the help partial may be included twice
  window.pharmacrmKeys = true;

  var dialog = document.getElementById("keys-help");
  var page = dialog ? dialog.getAttribute("data-keys-page") : "";
  var opener = document.getElementById("keys-help-open");
  if (opener) {
    opener.hidden = false;
    opener.addEventListener("click", showHelp);
  }

  var NOT_TYPING = { checkbox: 1, radio: 1, button: 1, submit: 1, reset: 1, image: 1 };

  function typing(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return !NOT_TYPING[(el.type || "").toLowerCase()];
    return false;
  }

  function showHelp() {
    if (!dialog) return;
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    var close = document.getElementById("keys-help-close");
    if (close) close.focus();
  }

  // --- queues ---------------------------------------------------------------------------------------

  function visible(el) {
    return !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  }

  function rows() {
    return Array.prototype.filter.call(document.querySelectorAll("tr.ticket-row"), visible);
  }

  function currentRow() {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest("tr.ticket-row") : null;
    return row || document.querySelector("tr.ticket-row.is-current");
  }

  function select(row) {
    rows().forEach(function (r) {
      r.classList.remove("is-current");
      r.removeAttribute("aria-current");
    });
    row.classList.add("is-current");
    row.setAttribute("aria-current", "true");
    if (!row.hasAttribute("tabindex")) row.setAttribute("tabindex", "-1");
    row.focus();
    if (row.scrollIntoView) row.scrollIntoView({ block: "nearest" });
  }

  function move(delta) {
    var list = rows();
    if (!list.length) return false;
    var index = list.indexOf(currentRow());
    var next = index < 0 ? (delta > 0 ? 0 : list.length - 1) : Math.min(Math.max(index + delta, 0), list.length - 1);
    select(list[next]);
    return true;
  }

  function openRow() {
    var row = currentRow();
    var link = row ? row.querySelector("a[href]") : null;
    if (!link) return false;
    window.location.assign(link.href);
    return true;
  }

  function toggleRow() {
    var row = currentRow();
    var box = row ? row.querySelector("input[type=checkbox]") : null;
    if (!box || box.disabled) return false;
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function focusSearch() {
    var field = document.querySelector("[data-keys-search]") ||
      document.querySelector("form.filters input:not([type=hidden]), form.filters select");
    if (!field) return false;
    field.focus();
    if (field.select) field.select();
    return true;
  }

  // --- the ticket page ------------------------------------------------------------------------------

  function openDetails(el) {
    for (var d = el; d; d = d.parentElement) {
      if (d.tagName === "DETAILS") d.open = true;
    }
  }

  function compose(kind) {
    var form = document.getElementById("composer");
    var body = document.getElementById("message-body");
    if (!form || !body) return false;
    var radio = form.querySelector('input[name="kind"][value="' + kind + '"]');
    if (radio && !radio.disabled) {
      radio.checked = true;
      radio.dispatchEvent(new Event("change", { bubbles: true }));
    }
    openDetails(body);
    body.focus();
    if (body.scrollIntoView) body.scrollIntoView({ block: "center" });
    return true;
  }

  function openSection(id) {
    var section = document.getElementById(id);
    if (!section) return false;
    openDetails(section);
    var field = section.querySelector("textarea, select, input:not([type=hidden])");
    var target = field || section.querySelector("summary");
    if (target) target.focus();
    if (section.scrollIntoView) section.scrollIntoView({ block: "nearest" });
    return true;
  }

  var QUEUE_KEYS = {
    j: function () { return move(1); },
    ArrowDown: function () { return move(1); },
    k: function () { return move(-1); },
    ArrowUp: function () { return move(-1); },
    o: openRow,
    x: toggleRow,
    "/": focusSearch,
  };
  var TICKET_KEYS = {
    r: function () { return compose("reply"); },
    n: function () { return compose("note"); },
    a: function () { return openSection("assign"); },
    e: function () { return openSection("resolve"); },
  };

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.altKey || event.metaKey || event.isComposing) return;
    if (dialog && dialog.open) return; // the dialog handles Esc itself
    var target = event.target;
    if (typing(target)) return;
    var key = event.key;
    var done = false;
    if (key === "?") {
      showHelp();
      done = true;
    } else if (page === "queue") {
      if (key === "Enter") {
        // Enter on a link or a button keeps its own meaning; on a ticket row it opens the ticket
        if (target && target.closest && target.closest("tr.ticket-row") === target) done = openRow();
      } else if (QUEUE_KEYS.hasOwnProperty(key)) {
        done = QUEUE_KEYS[key]();
      }
    } else if (page === "ticket" && TICKET_KEYS.hasOwnProperty(key)) {
      done = TICKET_KEYS[key]();
    }
    if (done) event.preventDefault();
  });
})();
