// PharmaCRM: the little behaviour htmx does not cover. Every page works without it.
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
