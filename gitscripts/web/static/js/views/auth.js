// Sign in and create an account.

import { InputError, api, describeError, lengthProblem, session } from "../api.js";
import { clear, h } from "../dom.js";

// Only a screen of this app may be the target after signing in, never another site.
function nextScreen(query) {
  const next = query.get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

function goTo(raw) {
  location.hash = `#${raw}`;
}

function authForm({ title, intro, fields, submitLabel, onSubmit, footer }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", class: "primary" }, submitLabel);
  const inputs = {};
  const form = h(
    "form",
    { class: "auth-form panel", novalidate: true },
    h("h1", {}, title),
    intro,
    fields.map((field) => {
      const id = `auth-${field.name}`;
      inputs[field.name] = h("input", {
        id,
        name: field.name,
        type: field.type || "text",
        autocomplete: field.autocomplete,
        required: true,
        minlength: field.minlength || null,
        maxlength: field.maxlength || null,
      });
      return h(
        "div",
        { class: "field" },
        h("label", { for: id }, field.label),
        inputs[field.name],
        field.hint ? h("p", { class: "hint" }, field.hint) : null,
      );
    }),
    error,
    h("div", { class: "actions" }, submit),
    footer,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const values = Object.fromEntries(
      Object.entries(inputs).map(([name, input]) => [name, input.value]),
    );
    const missing = fields.find((field) => !values[field.name]);
    // Said before anything is sent, as the hint under the field says it.
    const badLength = fields.find((field) => {
      const length = values[field.name].length;
      return length < (field.minlength || 0) || length > (field.maxlength || Infinity);
    });
    const problem = missing
      ? `${missing.label} is required.`
      : badLength &&
        lengthProblem(badLength.label, { min: badLength.minlength, max: badLength.maxlength });
    if (problem) {
      error.textContent = problem;
      error.hidden = false;
      inputs[(missing || badLength).name].focus();
      return;
    }
    submit.disabled = true;
    try {
      await onSubmit(values);
    } catch (problem) {
      error.textContent = describeError(problem);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  });
  return { form, inputs };
}

async function signInAndGo(app, login, password, query) {
  const answer = await api("auth/login", { method: "POST", json: { login, password } });
  await app.signIn(answer.access_token);
  goTo(nextScreen(query));
}

export async function renderLogin(view, { query, app }) {
  if (session.signedIn && app.user) {
    goTo(nextScreen(query));
    return;
  }
  view.dataset.title = "Sign in";
  const expired = query.get("expired")
    ? h(
        "p",
        { class: "notice-inline warning", role: "alert" },
        "Your session has expired. Sign in again to return to the page you were on.",
      )
    : null;
  const { form, inputs } = authForm({
    title: "Sign in",
    intro: expired,
    fields: [
      { name: "login", label: "Login", autocomplete: "username" },
      { name: "password", label: "Password", type: "password", autocomplete: "current-password" },
    ],
    submitLabel: "Sign in",
    onSubmit: ({ login, password }) => signInAndGo(app, login, password, query),
    footer: h(
      "p",
      { class: "switch" },
      "New here? ",
      h(
        "a",
        {
          href: `#/register${query.get("next") ? `?next=${encodeURIComponent(query.get("next"))}` : ""}`,
        },
        "Create an account",
      ),
    ),
  });
  clear(view, h("div", { class: "auth-screen" }, form));
  inputs.login.setAttribute("autofocus", "");
}

// Who may register (`open`, `invite` or `closed`); if the service cannot say, the form is shown
// and the service's own answer to it explains.
async function registrationPolicy() {
  try {
    return (await api("auth/registration")).policy;
  } catch {
    return "open";
  }
}

function registrationClosed() {
  return h(
    "section",
    { class: "auth-form panel", "aria-labelledby": "registration-closed" },
    h("h1", { id: "registration-closed" }, "Registration is closed"),
    h(
      "p",
      { class: "notice-inline info" },
      "New accounts on this service are created by an administrator. Ask one to create an account for you, then sign in.",
    ),
    h(
      "p",
      { class: "switch" },
      "Already have an account? ",
      h("a", { href: "#/login" }, "Sign in"),
    ),
  );
}

export async function renderRegister(view, { query, app }) {
  view.dataset.title = "Create an account";
  const policy = await registrationPolicy();
  if (policy === "closed") {
    view.dataset.title = "Registration is closed";
    clear(view, h("div", { class: "auth-screen" }, registrationClosed()));
    return;
  }
  const inviteField = {
    name: "invite_code",
    label: "Invite code",
    autocomplete: "off",
    hint: "From an administrator; it works once.",
  };
  const { form, inputs } = authForm({
    title: "Create an account",
    intro:
      policy === "invite"
        ? h(
            "p",
            { class: "notice-inline info" },
            "Accounts here need an invite code from an administrator.",
          )
        : null,
    fields: [
      ...(policy === "invite" ? [inviteField] : []),
      {
        name: "login",
        label: "Login",
        autocomplete: "username",
        minlength: 3,
        maxlength: 50,
        hint: "3 to 50 characters: letters, digits and punctuation, no spaces or ':'.",
      },
      {
        name: "password",
        label: "Password",
        type: "password",
        autocomplete: "new-password",
        minlength: 8,
        hint: "At least 8 characters.",
      },
      {
        name: "confirm",
        label: "Repeat the password",
        type: "password",
        autocomplete: "new-password",
      },
    ],
    submitLabel: "Create account",
    onSubmit: async ({ invite_code: inviteCode, login, password, confirm }) => {
      if (password !== confirm) throw new InputError("The two passwords differ.");
      const json =
        inviteCode === undefined
          ? { login, password }
          : { login, password, invite_code: inviteCode.trim() };
      await api("auth/register", { method: "POST", json });
      await signInAndGo(app, login, password, query);
    },
    footer: h(
      "p",
      { class: "switch" },
      "Already have an account? ",
      h("a", { href: "#/login" }, "Sign in"),
    ),
  });
  clear(view, h("div", { class: "auth-screen" }, form));
  (inputs.invite_code || inputs.login).setAttribute("autofocus", "");
}
