// The shell: who is signed in, the top bar, and which screen the hash shows.

import { api, describeError, onSessionExpired, session } from "./api.js";
import {
  clear,
  clearErrorNotices,
  errorPanel,
  h,
  ignoreStrayFileDrops,
  loading,
  notify,
} from "./dom.js";
import { installGoTo } from "./goto.js";
import { closeMenu } from "./menu.js";
import { currentLocation, match, navigate } from "./router.js";
import { renderAccount } from "./views/account.js";
import { renderActivity, renderCommit } from "./views/activity.js";
import { renderLogin, renderRegister } from "./views/auth.js";
import { renderDeleted } from "./views/deleted.js";
import { renderFiles } from "./views/files.js";
import { renderRun, renderRuns } from "./views/runs.js";
import { renderScript } from "./views/script.js";
import { renderSearch } from "./views/search.js";
import { renderTree } from "./views/tree.js";

const routes = [
  { pattern: "/login", render: renderLogin, public: true, nav: null },
  { pattern: "/register", render: renderRegister, public: true, nav: null },
  { pattern: "/", render: renderTree, nav: "scripts" },
  { pattern: "/scripts/:id", render: renderScript, nav: "scripts" },
  { pattern: "/scripts/:id/:tab", render: renderScript, nav: "scripts" },
  { pattern: "/deleted", render: renderDeleted, nav: "scripts" },
  { pattern: "/activity", render: renderActivity, nav: "activity" },
  { pattern: "/commits/:rev", render: renderCommit, nav: "activity" },
  { pattern: "/runs", render: renderRuns, nav: "runs" },
  { pattern: "/runs/:id", render: renderRun, nav: "runs" },
  { pattern: "/search", render: renderSearch, nav: "search" },
  { pattern: "/files", render: renderFiles, nav: "files" },
  { pattern: "/account", render: renderAccount, nav: "account" },
];

// What every screen may need: the signed-in user (null until known) and ways to change it.
export const app = {
  user: null,
  async refreshUser() {
    this.user = await api("auth/me");
    showSession();
    return this.user;
  },
  async signIn(token) {
    session.token = token;
    await this.refreshUser();
  },
  async signOut() {
    try {
      await api("auth/logout", { method: "POST" });
    } catch {
      // Already expired or unreachable: forgetting the token locally is what matters.
    }
    session.token = null;
    this.user = null;
    showSession();
    navigate("/login");
    notify("You are signed out.");
  },
};

const view = document.getElementById("view");
let cleanup = null;
let renderCount = 0;

function showSession() {
  const signedIn = Boolean(app.user);
  document.querySelector(".mainnav").hidden = !signedIn;
  document.querySelector(".session").hidden = !signedIn;
  document.querySelector(".who").textContent = signedIn
    ? app.user.login + (app.user.is_admin ? " (admin)" : "")
    : "";
}

function highlightNav(section) {
  for (const link of document.querySelectorAll(".mainnav a")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// What the user can do about a screen that could not be shown: try again in place when the
// service was unreachable or failed (no reload needed), and from any other screen than the
// scripts, go there. Never a link to the screen already open: following it would do nothing.
function recoveries(error, path) {
  const passing = error.status === 0 || error.status === 429 || error.status >= 500;
  const again = () => render().then(focusScreen);
  const retry = h("button", { type: "button", class: "primary", onclick: again }, "Retry");
  return [
    (passing || path === "/") && retry,
    path !== "/" && h("a", { href: "#/" }, "Back to the scripts"),
  ];
}

// Focus on the new screen for keyboard and screen-reader users, unless a view already placed it
// somewhere on purpose.
function focusScreen() {
  if (document.activeElement === document.body) view.focus({ preventScroll: true });
}

async function render() {
  const thisRender = ++renderCount;
  const location = currentLocation();
  let route = null;
  let params = null;
  for (const candidate of routes) {
    params = match(candidate.pattern, location.path);
    if (params) {
      route = candidate;
      break;
    }
  }
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  if (!route) {
    clear(view, errorPanel("There is no such page.", h("a", { href: "#/" }, "Go to the scripts")));
    return;
  }
  if (!route.public && !session.signedIn) {
    navigate("/login", { next: location.raw }, { replace: true });
    return;
  }
  if (!route.public && !app.user) {
    clear(view, loading());
    try {
      await app.refreshUser();
    } catch (error) {
      if (thisRender === renderCount && error.status !== 401) {
        clear(view, errorPanel(describeError(error), recoveries(error, "/")));
      }
      return; // a 401 has already sent the user to the login screen
    }
  }
  if (thisRender !== renderCount) return;
  highlightNav(route.nav);
  clear(view, loading());
  // Each screen is built apart and shown only if it is still the one asked for: a slow screen
  // finishing after the user moved on must not replace the newer one.
  const screen = h("div", { class: "screen-root" });
  let screenCleanup = null;
  try {
    screenCleanup = (await route.render(screen, { params, query: location.query, app })) || null;
  } catch (error) {
    if (thisRender !== renderCount || error.status === 401) return;
    clear(screen, errorPanel(describeError(error), recoveries(error, location.path)));
  }
  if (thisRender !== renderCount) {
    if (screenCleanup) screenCleanup();
    return;
  }
  view.replaceChildren(screen);
  cleanup = screenCleanup;
  document.title = screen.dataset.title ? `${screen.dataset.title} · gitscripts` : "gitscripts";
  const wanted = screen.querySelector("[autofocus]");
  if (wanted) wanted.focus();
}

// A 401 on a request made with a token: the session ended. Remember where the user was.
onSessionExpired(() => {
  app.user = null;
  showSession();
  const location = currentLocation();
  if (location.path === "/login" || location.path === "/register") return;
  navigate("/login", { next: location.raw, expired: "1" });
});

document.querySelector("[data-action=logout]").addEventListener("click", () => app.signOut());
installGoTo(() => Boolean(app.user));
ignoreStrayFileDrops();

window.addEventListener("hashchange", () => {
  clearErrorNotices();
  // Dialogs and menus belong to the screen they were opened on (a session ending mid-dialog).
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  closeMenu();
  render().then(focusScreen);
});

render();
