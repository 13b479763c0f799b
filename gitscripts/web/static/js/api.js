// The one door to the REST API: the session token, JSON in and out, and errors as ApiError.

import { notify } from "./dom.js";

const TOKEN_KEY = "gitscripts.token";
const API = "/api/v1";

export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

/** A problem with what the user typed, found in the page before anything was sent. */
export class InputError extends Error {}

// Listeners told when the service answers 401 to a request made with a session: the token
// expired or was revoked, and the app sends the user to the login screen.
const expiryListeners = new Set();
export function onSessionExpired(listener) {
  expiryListeners.add(listener);
}

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) localStorage.setItem(TOKEN_KEY, value);
    else localStorage.removeItem(TOKEN_KEY);
  },
  get signedIn() {
    return Boolean(this.token);
  },
};

function authHeaders() {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// Turns any failed response into an ApiError in words; the unified error shape when the service
// sent one, a plain sentence otherwise (a proxy's HTML error page, an empty 502...).
async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (body && typeof body.error_code === "string") {
    return new ApiError(
      response.status,
      body.error_code,
      body.message || body.error_code,
      body.details,
    );
  }
  return new ApiError(
    response.status,
    "HTTP_" + response.status,
    `The service answered with an unexpected error (HTTP ${response.status} ${response.statusText}).`,
  );
}

function unreachable() {
  return new ApiError(
    0,
    "NETWORK_ERROR",
    "The service could not be reached. Check your connection and try again.",
  );
}

function expireIfUnauthorized(error, sentToken) {
  // Only the session the request was sent with has ended: a late answer to a request from
  // before signing in again must not sign the new session out.
  if (error.status === 401 && sentToken && session.token === sentToken) {
    session.token = null;
    for (const listener of expiryListeners) listener(error);
  }
}

/** fetch() against the API; resolves to the response, throws ApiError for anything but 2xx. */
export async function send(path, { method = "GET", json, body, headers = {}, signal } = {}) {
  const sentToken = session.token;
  const init = { method, headers: { ...authHeaders(), ...headers }, signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path.startsWith("/") ? path : `${API}/${path}`, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw unreachable();
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    expireIfUnauthorized(error, sentToken);
    throw error;
  }
  return response;
}

/** The parsed JSON answer (null for 204). */
export async function api(path, options) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  return response.json();
}

/** A multipart upload with progress, which fetch() cannot report: XMLHttpRequest. */
export function uploadWithProgress(path, formData, onProgress) {
  const sentToken = session.token;
  const request = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    request.open("POST", `${API}/${path}`);
    for (const [name, value] of Object.entries(authHeaders()))
      request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener("load", async () => {
      const response = new Response(request.response, {
        status: request.status,
        statusText: request.statusText,
      });
      if (!response.ok) {
        const error = await errorFrom(response);
        expireIfUnauthorized(error, sentToken);
        reject(error);
        return;
      }
      try {
        resolve(await response.json());
      } catch {
        reject(
          new ApiError(
            response.status,
            "BAD_RESPONSE",
            "The service answered the upload with something that is not JSON.",
          ),
        );
      }
    });
    request.addEventListener("error", () => reject(unreachable()));
    request.addEventListener("abort", () =>
      reject(new DOMException("The upload was cancelled.", "AbortError")),
    );
    request.send(formData);
  });
  return { done, cancel: () => request.abort() };
}

/** A sentence for the user from whatever was thrown. */
export function describeError(error) {
  if (error instanceof ApiError) {
    const fieldErrors =
      error.details && Array.isArray(error.details.errors) ? error.details.errors : [];
    if (error.code === "VALIDATION_ERROR" && fieldErrors.length) {
      return fieldErrors.map(describeFieldError).join(" ");
    }
    return error.message;
  }
  if (error instanceof InputError) return error.message;
  if (error && error.name === "AbortError") return "Cancelled.";
  return (
    "Something went wrong in the page: " + (error && error.message ? error.message : String(error))
  );
}

function humanField(field) {
  const last = String(field).split(".").pop();
  return last.replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

/** "The password must have at least 8 characters.": a length rule, said of a named value. */
export function lengthProblem(name, { min, max }) {
  const characters = (n) => `${n} character${Number(n) === 1 ? "" : "s"}`;
  const the = `The ${name.toLowerCase()}`;
  if (min !== undefined && max !== undefined)
    return `${the} must have ${min} to ${characters(max)}.`;
  return min !== undefined
    ? `${the} must have at least ${characters(min)}.`
    : `${the} must have at most ${characters(max)}.`;
}

// The validator's own words for a request it could not read (as the service passes them on),
// each as a sentence about the value it names.
const VALIDATOR_WORDS = [
  [/^String should have at least (\d+) characters?$/, (name, n) => lengthProblem(name, { min: n })],
  [/^String should have at most (\d+) characters?$/, (name, n) => lengthProblem(name, { max: n })],
  [/^Field required$/, (name) => `The ${name.toLowerCase()} is required.`],
];

/** One problem of a VALIDATION_ERROR's `details.errors` (`{field, message}`) as a sentence. */
export function describeFieldError(item) {
  if (!item.field) return item.message;
  const name = humanField(item.field);
  for (const [pattern, words] of VALIDATOR_WORDS) {
    const found = pattern.exec(item.message);
    if (found) return words(name, found[1]);
  }
  return `${name}: ${item.message}`;
}

/** A script path or file key in a URL: each segment escaped, the slashes kept. */
export function encodePath(path) {
  return path.split("/").map(encodeURIComponent).join("/");
}

/**
 * Runs a user's action and reports its failure in words. A 401 says nothing here: the session
 * ended and the login screen explains. Resolves to the action's result, or null if it failed.
 */
export async function guard(action) {
  try {
    return await action();
  } catch (error) {
    if (error.status !== 401) notify(describeError(error), "error");
    return null;
  }
}
