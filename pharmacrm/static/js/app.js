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
