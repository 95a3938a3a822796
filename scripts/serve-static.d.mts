/** Types of scripts/serve-static.mjs, for TypeScript callers (tests, benchmarks). */

/** MIME types by extension (lower case, with the dot). */
export declare const MIME_TYPES: Readonly<Record<string, string>>;

/** An in-memory response. */
export interface StaticRoute {
  body: string | Uint8Array;
  /** MIME type; default from the path's extension. */
  type?: string;
}

export interface StaticServerOptions {
  /** Extra in-memory responses by exact URL path (e.g. `'/plan.json'`); checked before the files. */
  routes?: Record<string, StaticRoute | (() => StaticRoute | Promise<StaticRoute>)>;
  /** Send COOP/COEP headers so the page is `crossOriginIsolated`. Default true. */
  crossOriginIsolated?: boolean;
  /** Interface to listen on. Default `'127.0.0.1'` (a secure context for WebGPU). */
  host?: string;
  /** Called once per request with `"<status> <method> <path>"`. */
  log?: (line: string) => void;
}

export interface StaticServer {
  /** Origin without a trailing slash, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

/** Starts serving `rootDir` on `host:port` (port 0, the default, picks a free port). */
export declare function startStaticServer(rootDir: string, port?: number, options?: StaticServerOptions): Promise<StaticServer>;
