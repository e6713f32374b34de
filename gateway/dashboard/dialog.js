// One confirmation dialog (<dialog>, modal: focus stays inside, Escape cancels).

import { $ } from "./dom.js";

// Resolves true when the person confirms, false otherwise. `extra`: a node shown
// under the text (e.g. a checkbox the caller reads afterwards).
export function confirmAction({ title, text, confirm = "Confirm", keep = "Keep it", extra = null }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-extra").replaceChildren(...(extra ? [extra] : []));
  $("#confirm-extra").hidden = !extra;
  $("#confirm-yes").textContent = confirm;
  $("#confirm-no").textContent = keep;
  dialog.returnValue = "";
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (opener && opener.focus) opener.focus();
      resolve(dialog.returnValue === "confirm");
    }, { once: true });
    dialog.showModal();
    $("#confirm-no").focus();
  });
}
