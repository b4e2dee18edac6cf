import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** A refusal or failure from the REST API: the engine's one line, and the HTTP status. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/** The server extension's routes under /mm/api/, with Jupyter's own authentication and XSRF (ServerConnection). */
export class Api {
  /** The workspace the panel looks at: a path relative to the server's root, or '' for the default one. */
  workspace = '';
  private settings = ServerConnection.makeSettings();

  url(path: string, params: Record<string, string | number | undefined> = {}): string {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== '') {
        query[k] = String(v);
      }
    }
    if (this.workspace) {
      query.workspace = this.workspace;
    }
    const search = new URLSearchParams(query).toString();
    return URLExt.join(this.settings.baseUrl, 'mm', 'api', path) + (search ? `?${search}` : '');
  }

  async request(
    method: string,
    path: string,
    params: Record<string, string | number | undefined> = {},
    body?: unknown,
    headers: Record<string, string> = {}
  ): Promise<Response> {
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
    }
    return ServerConnection.makeRequest(this.url(path, params), init, this.settings);
  }

  async json<T>(
    method: string,
    path: string,
    params: Record<string, string | number | undefined> = {},
    body?: unknown
  ): Promise<T> {
    const resp = await this.request(method, path, params, body);
    const text = await resp.text();
    const data = text ? JSON.parse(text) : null;
    if (!resp.ok) {
      throw new ApiError(data?.error ?? `${resp.status} ${resp.statusText}`, resp.status);
    }
    return data as T;
  }

  get<T>(path: string, params: Record<string, string | number | undefined> = {}): Promise<T> {
    return this.json<T>('GET', path, params);
  }

  /** Whether anything changed since `etag` (a 304 costs the server one ref read); the new ETag when it did. */
  async changed(etag: string): Promise<string | null> {
    const resp = await this.request(
      'GET',
      'head',
      {},
      undefined,
      etag ? { 'If-None-Match': etag } : {}
    );
    if (resp.status === 304) {
      return null;
    }
    if (!resp.ok) {
      const data = await resp.json().catch(() => null);
      throw new ApiError(data?.error ?? `${resp.status} ${resp.statusText}`, resp.status);
    }
    return resp.headers.get('ETag') ?? String(Date.now());
  }
}
