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

/**
 * Send a request and return the parsed JSON answer (null for 204 or a body that is not JSON).
 * options: method, body (sent as JSON), csrf (the token; sent in CSRF_HEADER), headers (extra), and any
 * other fetch() option (credentials, cache …). Throws ApiError for a non-2xx answer or no answer;
 * its message is the server's message, or "HTTP <status>" when the answer carried none.
 */
export async function fetchJson(url, { method = "GET", body, csrf, headers = {}, ...init } = {}) {
  const sent = { Accept: "application/json", ...headers };
  if (csrf) sent[CSRF_HEADER] = csrf;
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      ...init,
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (cause) {
    throw new ApiError(0, "network", (cause && cause.message) || "");
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const failure = new ApiError(response.status, `http_${response.status}`, `HTTP ${response.status}`, data);
    if (failure.error) {
      if (failure.error.code) failure.code = failure.error.code;
      if (typeof failure.error.message === "string") failure.message = failure.error.message;
    }
    throw failure;
  }
  return data;
}
