// The file list's progressive enhancement: a "select all" box, and the bulk buttons say how
// many files are selected (and stay disabled while none is). Without this script the
// checkboxes and buttons work the same.
"use strict";
(function () {
  const form = document.getElementById("bulk");
  if (!form) return;
  const boxes = () => Array.from(document.querySelectorAll('input[type=checkbox][form=bulk]'));
  const head = document.querySelector("table.items thead th.select");
  let all = null;
  if (head) {
    all = document.createElement("input");
    all.type = "checkbox";
    all.setAttribute("aria-label", "Select all on this page");
    all.className = "select-all";
    head.appendChild(all);
    all.addEventListener("change", () => {
      boxes().forEach((b) => { b.checked = all.checked; });
      update();
    });
  }
  const buttons = Array.from(form.querySelectorAll("button"));
  const labels = buttons.map((b) => b.textContent);
  function update() {
    const n = boxes().filter((b) => b.checked).length;
    buttons.forEach((b, i) => {
      b.disabled = n === 0;
      b.textContent = n === 0 ? labels[i] : labels[i].replace("selected", n + " selected");
    });
    if (all) all.checked = n > 0 && n === boxes().length;
  }
  boxes().forEach((b) => b.addEventListener("change", update));
  update();
})();
