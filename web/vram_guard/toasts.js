// One way to show a toast on every frontend version: the kind-named methods of newer frontends
// (toast.warning(title, {description})) where they exist, else toast.add({severity, summary, detail}).

const SEVERITY = { info: "info", success: "success", warning: "warn", error: "error" };

export function makeToaster(toastManager) {
  return function show(kind, title, description, lifeMs = 8000) {
    if (!toastManager) return;
    if (typeof toastManager[kind] === "function" && typeof toastManager.dismiss === "function") {
      toastManager[kind](title, { description, duration: lifeMs });
    } else {
      toastManager.add({ severity: SEVERITY[kind] ?? "info", summary: title, detail: description, life: lifeMs });
    }
  };
}
