// Hash routes (`#/scripts/12/history?from=...`): a reload or a shared link opens the same screen,
// and the service needs no catch-all route.

export function currentLocation() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  return { path: path || "/", query: new URLSearchParams(query), raw };
}

export function href(path, query = {}) {
  const search = new URLSearchParams(
    Object.entries(query).filter(
      ([, value]) => value !== null && value !== undefined && value !== "",
    ),
  );
  const text = search.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function navigate(path, query = {}, { replace = false } = {}) {
  const target = href(path, query);
  if (replace) {
    history.replaceState(null, "", target);
    rerender();
  } else {
    location.hash = target;
  }
}

/** Updates the query of the current screen without rendering it again (tabs, selections). */
export function updateQuery(changes) {
  const { path, query } = currentLocation();
  for (const [name, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") query.delete(name);
    else query.set(name, value);
  }
  history.replaceState(null, "", href(path, Object.fromEntries(query)));
}

/** Matches `/scripts/:id/:tab` style patterns; returns the named parts or null. */
export function match(pattern, path) {
  const names = [];
  const source = pattern.replace(/:(\w+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  const found = new RegExp(`^${source}/?$`).exec(path);
  if (!found) return null;
  try {
    return Object.fromEntries(
      names.map((name, index) => [name, decodeURIComponent(found[index + 1])]),
    );
  } catch {
    return null; // a malformed escape (`%E0%A4%A`) names no page
  }
}

/** Shows the current screen again, with fresh data (after a change made on it). */
export function rerender() {
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
