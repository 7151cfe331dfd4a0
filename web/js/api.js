// The JSON API v1 of `scisearch serve` (docs/api.md). The only module that talks to the network:
// every page goes through these functions, so errors look the same everywhere.

const BASE = '/api/v1';

// An error the API reported ({"error": {"status", "message"}}) or a network failure (status 0).
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

// Builds "/api/v1/<path>?..." from a plain object; array values repeat the parameter, and empty
// values ("" / null / undefined) are left out.
function url(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') search.append(key, String(v));
    }
  }
  const qs = search.toString();
  return `${BASE}${path}${qs ? `?${qs}` : ''}`;
}

// Sends one request and returns the parsed JSON body (null for 204). Throws ApiError with the
// server's message for any non-2xx answer.
async function request(method, path, { params, body, keepalive = false, signal } = {}) {
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive,
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'The server cannot be reached. Is scisearch serve running?');
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch {
    // An answer that is not JSON: reported below with the HTTP status.
  }
  if (!response.ok) {
    const message = data?.error?.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

// The numeric catalog id of "dataset:N" (or of N itself); null for anything else.
export function datasetNumber(id) {
  const match = /^(?:dataset:)?(\d+)$/.exec(String(id ?? ''));
  return match ? match[1] : null;
}

// The catalog id of a search hit's dataset: the API's hit.dataset.id, else from "dataset:N"; null
// for proposals, publications and log entries.
export function hitDatasetNumber(hit) {
  if (hit?.dataset && typeof hit.dataset === 'object' && hit.dataset.id !== undefined) return datasetNumber(hit.dataset.id);
  return hit?.kind && hit.kind !== 'dataset' ? null : datasetNumber(hit?.id);
}

// Thumbnail URLs are given by the API; older forms (/api/datasets/...) are mapped onto v1.
export function thumbnailUrl(hitOrUrl) {
  const raw = typeof hitOrUrl === 'string' ? hitOrUrl : hitOrUrl?.thumbnail;
  if (!raw) return null;
  return raw.startsWith('/api/') && !raw.startsWith(`${BASE}/`) ? raw.replace('/api/', `${BASE}/`) : raw;
}

export const health = () => request('GET', '/health');

// query: {q, f: ["field:value", ...], offset, limit, sort, kind, user}; aborted by `signal`.
export const search = (query, signal) => request('GET', '/search', { params: query, signal });

export const dataset = (id) => request('GET', `/datasets/${encodeURIComponent(datasetNumber(id))}`);

export const metadata = (id, signal) =>
  request('GET', `/datasets/${encodeURIComponent(datasetNumber(id))}/metadata`, { params: { signal } });

export const documentById = (id) => request('GET', `/documents/${encodeURIComponent(id)}`);

export const addTag = (id, user, value) =>
  request('POST', `/datasets/${encodeURIComponent(datasetNumber(id))}/tags`, { body: { user, value } });

export const acceptTag = (tagId, user) =>
  request('POST', `/tags/${encodeURIComponent(tagId)}/accept`, { body: { user } });

export const rejectTag = (tagId, user) =>
  request('POST', `/tags/${encodeURIComponent(tagId)}/reject`, { body: { user } });

export const removeTag = (tagId, user) =>
  request('DELETE', `/tags/${encodeURIComponent(tagId)}`, { params: { user } });

// order: "path" (the next after `after` in sorted path order) or "random".
export const taggingNext = ({ user, after, order = 'path' }) =>
  request('GET', '/tagging/next', { params: { user, after, order } });

export const vocabulary = (prefix, limit = 10, signal) =>
  request('GET', '/vocabulary', { params: { prefix, limit }, signal });

// Logs that the result `item` at `rank` of query `queryId` was opened. Survives the page being
// left (keepalive); never throws: a lost click must not stop the user.
export function logClick({ user, queryId, item, rank }) {
  if (!queryId) return;
  request('POST', '/clicks', {
    body: { user: user || undefined, query_id: queryId, item, rank },
    keepalive: true,
  }).catch(() => {});
}
