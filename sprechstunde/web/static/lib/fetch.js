// The one way page scripts call the JSON API: Accept/Content-Type, the staff CSRF header, and the server's
// error body ({"error": {"code", "message", …}}, web/core/errors.py json_error) as a thrown ApiError.

/** The header staff requests carry their session's CSRF token in (web/core/services.py CSRF_HEADER). */
export const CSRF_HEADER = "X-CSRF-Token";

/** A refused or failed request. status 0 with code "network": no answer at all (offline, DNS, aborted). */
export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body; // the parsed answer, if it was JSON
    // the server's error object with its extra fields (next_opening, languages, office …), or null
    this.error = body && typeof body.error === "object" && body.error !== null ? body.error : null;
  }
}

/** The request as every API call sends it: Accept, CSRF header, a JSON body. No answer → ApiError status 0. */
async function request(url, accept, { method = "GET", body, csrf, headers = {}, ...init } = {}) {
  const sent = { Accept: accept, ...headers };
  if (csrf) sent[CSRF_HEADER] = csrf;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  try {
    return await fetch(url, {
      ...init,
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (cause) {
    throw new ApiError(0, "network", (cause && cause.message) || "");
  }
}

/** The ApiError for a non-2xx answer, with the server's error body when it sent one. */
async function refused(response) {
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  const failure = new ApiError(response.status, `http_${response.status}`, `HTTP ${response.status}`, data);
  if (failure.error) {
    if (failure.error.code) failure.code = failure.error.code;
    if (typeof failure.error.message === "string") failure.message = failure.error.message;
  }
  return failure;
}

/**
 * Send a request and return the parsed JSON answer (null for 204 or a body that is not JSON).
 * options: method, body (sent as JSON), csrf (the token; sent in CSRF_HEADER), headers (extra), and any
 * other fetch() option (credentials, cache …). Throws ApiError for a non-2xx answer or no answer;
 * its message is the server's message, or "HTTP <status>" when the answer carried none.
 */
export async function fetchJson(url, options = {}) {
  const response = await request(url, "application/json", options);
  if (!response.ok) throw await refused(response);
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/**
 * Send a request (options as fetchJson) whose answer is a file: `{ blob, filename }`, the name from the
 * answer's Content-Disposition (null without one). Throws ApiError like fetchJson.
 */
export async function fetchFile(url, options = {}) {
  const response = await request(url, "*/*", options);
  if (!response.ok) throw await refused(response);
  const named = /filename="([^"\/\\]+)"/.exec(response.headers.get("Content-Disposition") || "");
  return { blob: await response.blob(), filename: named ? named[1] : null };
}
