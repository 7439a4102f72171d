// PharmaCRM: the little behaviour htmx does not cover. Every page works without it.

// What the pages' own scripts share (loaded after this one: every script is deferred, in document order).
window.PharmaCRM = {
  // a percentage as the pages write it (core.numbers.percent_text): "12.5%", "12%" — one place unless none is needed
  percent: function (value) {
    if (value === null || value === undefined || value === "") return "—";
    var n = Number(value);
    if (!isFinite(n)) return String(value);
    n = (n < 0 ? -1 : 1) * Math.round(Math.abs(n) * 10) / 10;
    return (n === 0 ? 0 : n) + "%";
  },
};
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  document.addEventListener("change", function (event) {
    // the language select submits its form as soon as a language is chosen
    var el = event.target;
    if (el.matches && el.matches("select[data-autosubmit]")) {
      el.form.submit();
    }
    // a select that decides what the whole page shows (the import wizard's target) reloads the page for the
    // new choice; choosing the option the page was built for again does nothing
    if (el.matches && el.matches("select[data-navigate]")) {
      var built = Array.prototype.find.call(el.options, function (o) { return o.defaultSelected; });
      if (built && built.value === el.value) return;
      var url = new URL(window.location.href);
      url.searchParams.set(el.getAttribute("data-navigate"), el.value);
      window.location.assign(url.toString());
    }
  });

  // a page sent back with an error in one of its sections (an edit conflict, a refused item) opens at that
  // section instead of the top, where its message would be out of sight
  document.addEventListener("DOMContentLoaded", function () {
    var target = document.querySelector("[data-scroll-here]");
    if (target && target.scrollIntoView) target.scrollIntoView({ block: "start" });
  });

  document.addEventListener("keydown", function (event) {
    // Escape closes the search suggestions and the user menu
    if (event.key !== "Escape") return;
    var box = document.getElementById("global-suggestions");
    if (box) box.innerHTML = "";
    document.querySelectorAll("details.user-menu[open]").forEach(function (d) { d.removeAttribute("open"); });
  });

  document.addEventListener("click", function (event) {
    // a click outside the search box or the user menu closes them
    var search = document.querySelector(".global-search");
    var box = document.getElementById("global-suggestions");
    if (box && search && !search.contains(event.target)) box.innerHTML = "";
    document.querySelectorAll("details.user-menu[open]").forEach(function (d) {
      if (!d.contains(event.target)) d.removeAttribute("open");
    });
  });
})();

// A form marked data-submit-once (recording a meeting, a trial offer) is sent once: its submit buttons are
// disabled after the first click, so that a double click does not send it twice. Coming back to the page
// (the browser's back button) enables them again.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-submit-once]")) return;
    if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
    form.setAttribute("data-sent", "1");
    // disabled after the event: a disabled button's name and value would not be sent
    setTimeout(function () {
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (b) { b.disabled = true; });
    }, 0);
  });
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-submit-once][data-sent]").forEach(function (form) {
      form.removeAttribute("data-sent");
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (b) { b.disabled = false; });
    });
  });
})();

// The intake form's customer's language follows the person chosen — the language on their record (the option's
// data-language), else the site's — as long as the agent has not chosen one: the select still shows what the page
// (or this script) preset, kept in the hidden <name>_preset field, which the server compares with it. A change is
// read out (the polite live region #<language id>_said, its data-said sentence): the select's new value is not
// announced by itself.
(function () {
  "use strict";
  function follow(person) {
    var language = document.getElementById(person.getAttribute("data-language-for"));
    var preset = language && language.form && language.form.elements[language.name + "_preset"];
    if (!preset || language.value !== preset.value) return;  // the agent chose a language: it stays
    var option = person.options[person.selectedIndex];
    var code = (option && option.getAttribute("data-language")) || person.getAttribute("data-language-default");
    if (!code || code === language.value) return;
    language.value = code;
    preset.value = code;
    var said = document.getElementById(language.id + "_said");  // its sentence in the page's language
    if (said) {
      said.textContent = (said.getAttribute("data-said") || "{language}")
        .replace("{language}", language.options[language.selectedIndex].text);
    }
  }
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-language-for]")) follow(el);
  });
  // choosing an institution reloads the person select's options (htmx): no person is chosen then
  document.addEventListener("htmx:afterSwap", function (event) {
    var el = event.target;
    if (el.matches && el.matches("select[data-language-for]")) follow(el);
  });
})();
