// The account: personal API tokens and how to clone and push the scripts with git.

import { api, guard } from "../api.js";
import { confirmDialog, formDialog, infoDialog } from "../dialogs.js";
import { clear, h, notify, snippet, timeElement } from "../dom.js";

export async function renderAccount(view, { app }) {
  view.dataset.title = "Account";
  const user = app.user;
  const tokensArea = h("div", {});

  const refresh = async () => {
    const tokens = await api("auth/tokens");
    clear(
      tokensArea,
      tokens.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "tokens-table" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", {}, "Name"),
                  h("th", {}, "Starts with"),
                  h("th", {}, "Created"),
                  h("th", {}, "Expires"),
                  h("th", {}, h("span", { class: "offscreen" }, "Actions")),
                ),
              ),
              h(
                "tbody",
                {},
                tokens.map((token) =>
                  h(
                    "tr",
                    { "data-token-id": token.id },
                    h("td", {}, token.name),
                    h("td", {}, h("code", {}, `${token.prefix}…`)),
                    h("td", {}, timeElement(token.created_at)),
                    h("td", {}, token.expires_at ? timeElement(token.expires_at) : "never"),
                    h(
                      "td",
                      { class: "row-actions" },
                      h(
                        "button",
                        { type: "button", class: "small danger", onclick: () => revoke(token) },
                        "Revoke…",
                      ),
                    ),
                  ),
                ),
              ),
            ),
          )
        : h("p", { class: "hint" }, "No tokens yet."),
    );
  };

  const revoke = (token) =>
    guard(async () => {
      const sure = await confirmDialog({
        title: `Revoke token “${token.name}”?`,
        message: "Anything using it (a simulator, a git remote) stops working at once.",
        confirmLabel: "Revoke",
        danger: true,
      });
      if (!sure) return;
      await api(`auth/tokens/${token.id}`, { method: "DELETE" });
      notify(`Revoked token ${token.name}.`, "success");
      await refresh();
    });

  const create = async () => {
    const created = await formDialog({
      title: "New API token",
      intro:
        "For simulators, scripts and git: use it as a Bearer token, or as the password with your login for git.",
      fields: [
        {
          name: "name",
          label: "Name",
          required: true,
          maxlength: 100,
          placeholder: "reservoir simulator on host X",
        },
        {
          name: "expires_in_days",
          label: "Expires after (days)",
          type: "number",
          min: 1,
          max: 3650,
          placeholder: "never",
          hint: "Leave empty for a token that does not expire.",
        },
      ],
      submitLabel: "Create token",
      onSubmit: ({ name, expires_in_days }) =>
        api("auth/tokens", {
          method: "POST",
          json: { name, expires_in_days: expires_in_days ? Number(expires_in_days) : null },
        }),
    });
    if (!created) return;
    await refresh();
    await infoDialog({
      title: "Your new token",
      body: [
        h(
          "p",
          { class: "notice-inline warning" },
          "Copy it now: it is shown only once. Only a hash is kept.",
        ),
        snippet(created.token, { label: "Copy token", testid: "new-token", wrap: true }),
      ],
    });
  };

  const cloneUrl = `${location.origin}/git/scripts.git`;
  const authedUrl = cloneUrl.replace("://", `://${encodeURIComponent(user.login)}@`);
  clear(
    view,
    h(
      "section",
      { class: "screen" },
      h("div", { class: "screen-head" }, h("h1", {}, "Account")),
      h(
        "dl",
        { class: "metadata" },
        h("dt", {}, "Login"),
        h("dd", { "data-testid": "account-login" }, user.login),
        h("dt", {}, "Role"),
        h("dd", {}, user.is_admin ? "administrator" : "user"),
        h("dt", {}, "Member since"),
        h("dd", {}, timeElement(user.created_at)),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "tokens-heading" },
        h(
          "div",
          { class: "label-row" },
          h("h2", { id: "tokens-heading" }, "API tokens"),
          h(
            "button",
            { type: "button", class: "primary", onclick: () => guard(create) },
            "New token",
          ),
        ),
        h(
          "p",
          { class: "hint" },
          "Tokens let programs act as you without your password. Revoke one when a machine no longer needs it.",
        ),
        tokensArea,
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "git-heading" },
        h("h2", { id: "git-heading" }, "Clone and push with git"),
        h(
          "p",
          {},
          "Every folder and script is a file in one git repository. Clone it, edit, commit and push: pushes follow the same rules as the web and the API (scripts must define main(data); you change only what you own).",
        ),
        h("h3", {}, "Clone URL"),
        snippet(cloneUrl, { label: "Copy URL", testid: "clone-url" }),
        h("h3", {}, "How to"),
        snippet(
          `git clone ${authedUrl}
cd scripts
# Password: an API token from this page (or your password)
git config credential.helper store   # optional: remember the token

# edit or add a script, then
git add .
git commit -m "Tune the decline curve"
git push`,
          { label: "Copy commands" },
        ),
        h(
          "p",
          { class: "hint" },
          "Each script's display name and description live beside it in <name>.py.meta.json. Tags you push appear under History.",
        ),
      ),
    ),
  );
  await refresh();
}
