// The schedule editor: shows the sections of the chosen event type and adds or removes rows.
// Without JavaScript every section shows and a few empty rows are always offered.
(function () {
  "use strict";
  var form = document.querySelector("[data-schedule-form]");
  if (!form) {
    return;
  }

  function chosenKind() {
    var checked = form.querySelector("[data-kind]:checked");
    return checked ? checked.value : "";
  }

  function listed(element, attribute, value) {
    return element.getAttribute(attribute).split(/\s+/).indexOf(value) !== -1;
  }

  function update() {
    var kind = chosenKind();
    form.querySelectorAll("[data-show-for]").forEach(function (section) {
      section.hidden = kind !== "" && !listed(section, "data-show-for", kind);
    });
    var repeat = form.querySelector("[data-repeat]");
    form.querySelectorAll("[data-show-repeat]").forEach(function (part) {
      part.hidden = !!repeat && !listed(part, "data-show-repeat", repeat.value);
    });
    form.querySelectorAll("[data-toggle]").forEach(function (toggle) {
      var name = toggle.getAttribute("data-toggle");
      form.querySelectorAll('[data-toggled-by="' + name + '"]').forEach(function (part) {
        part.hidden = !toggle.checked;
      });
    });
  }

  function renumber(list) {
    var name = list.getAttribute("data-rows");
    var base = list.getAttribute("data-label");
    list.querySelectorAll("[data-row]").forEach(function (row, index) {
      var number = index + 1;
      var input = row.querySelector("input");
      var label = row.querySelector("label");
      var spoken = row.querySelector("[data-remove-row] .sr-only");
      input.id = name + "-" + number;
      label.setAttribute("for", input.id);
      label.textContent = base + " " + number;
      if (spoken) {
        spoken.textContent = " " + base.toLowerCase() + " " + number;
      }
    });
  }

  function addRow(name) {
    var list = form.querySelector('[data-rows="' + name + '"]');
    var rows = list.querySelectorAll("[data-row]");
    var copy = rows[rows.length - 1].cloneNode(true);
    var input = copy.querySelector("input");
    input.value = "";
    input.removeAttribute("aria-invalid");
    list.appendChild(copy);
    renumber(list);
    input.focus();
  }

  function removeRow(row) {
    var list = row.closest("[data-rows]");
    if (list.querySelectorAll("[data-row]").length > 1) {
      var next = row.nextElementSibling || row.previousElementSibling;
      row.remove();
      renumber(list);
      next.querySelector("input").focus();
    } else {
      // The last row stays, emptied, so that there is always one to type into.
      row.querySelector("input").value = "";
    }
  }

  form.querySelectorAll("[data-add-row], [data-remove-row]").forEach(function (button) {
    button.hidden = false;
  });
  form.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    if (add) {
      addRow(add.getAttribute("data-add-row"));
      return;
    }
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      removeRow(remove.closest("[data-row]"));
    }
  });
  form.addEventListener("change", update);
  update();
})();
