/**
 * A tiny static file server for pages that need a secure context (WebGPU's `navigator.gpu` exists
 * only on https or http://127.0.0.1 / localhost, never on about:blank or file://).
 *
 * Used by test/browser.test.ts and reusable by the benchmark runner:
 *
 *   import { startStaticServer } from './scripts/serve-static.mjs';
 *   const server = await startStaticServer(repoRoot);        // random free port
 *   await page.goto(`${server.url}/bench/index.html`);
 *   await server.close();
 *
 * Serves files under `rootDir` only (no directory listings, no `..` escapes), with correct MIME
 * types for .js/.mjs/.wasm/.html/.json/.wgsl, `Cache-Control: no-store`, and by default the
 * COOP/COEP headers that make the page `crossOriginIsolated` (SharedArrayBuffer, multi-threaded
 * wasm, full-resolution `performance.now()`), which same-origin pages lose nothing by.
 *
 * Run it by hand with `node scripts/serve-static.mjs [rootDir] [port]`.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** MIME types by extension (lower case, with the dot). */
export const MIME_TYPES = Object.freeze({
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.wgsl': 'text/wgsl; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.bin': 'application/octet-stream',
  '.onnx': 'application/octet-stream',
});

/**
 * @typedef {object} StaticRoute
 * @property {string | Uint8Array} body
 * @property {string} [type] MIME type; default from the path's extension.
 */

/**
 * @typedef {object} StaticServerOptions
 * @property {Record<string, StaticRoute | (() => StaticRoute | Promise<StaticRoute>)>} [routes]
 *   Extra in-memory responses by exact URL path (e.g. `'/plan.json'`); checked before the files.
 * @property {boolean} [crossOriginIsolated] Send COOP/COEP headers. Default true.
 * @property {string} [host] Interface to listen on. Default `'127.0.0.1'` (a secure context).
 * @property {(line: string) => void} [log] Called once per request with `"<status> <method> <path>"`.
 */

/**
 * @typedef {object} StaticServer
 * @property {string} url Origin without a trailing slash, e.g. `http://127.0.0.1:41234`.
 * @property {number} port
 * @property {() => Promise<void>} close Stops listening and drops open connections.
 */

/**
 * Starts serving `rootDir` on `host:port` (port 0 = any free port).
 * @param {string} rootDir
 * @param {number} [port=0]
 * @param {StaticServerOptions} [options]
 * @returns {Promise<StaticServer>}
 */
export async function startStaticServer(rootDir, port = 0, options = {}) {
  const root = resolve(rootDir);
  const routes = options.routes ?? {};
  const isolated = options.crossOriginIsolated ?? true;
  const host = options.host ?? '127.0.0.1';
  const log = options.log;

  const server = createServer((req, res) => {
    const send = (status, headers, body) => {
      res.writeHead(status, {
        'Cache-Control': 'no-store',
        ...(isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {}),
        ...headers,
      });
      log?.(`${status} ${req.method} ${req.url}`);
      return body;
    };
    const fail = (status, message) => res.end(send(status, { 'Content-Type': 'text/plain; charset=utf-8' }, message));

    void (async () => {
      if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method not allowed\n');
      let path;
      try {
        path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
      } catch {
        return fail(400, 'bad url\n');
      }
      const route = routes[path];
      if (route !== undefined) {
        const r = typeof route === 'function' ? await route() : route;
        const type = r.type ?? MIME_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
        const body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body;
        send(200, { 'Content-Type': type, 'Content-Length': String(body.byteLength) });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
      if (path.endsWith('/')) path += 'index.html';
      const file = resolve(root, `.${path}`);
      if (file !== root && !file.startsWith(root + sep)) return fail(403, 'outside the served folder\n');
      let info;
      try {
        info = await stat(file);
      } catch {
        return fail(404, `not found: ${path}\n`);
      }
      if (!info.isFile()) return fail(404, `not a file: ${path}\n`);
      const type = MIME_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
      send(200, { 'Content-Type': type, 'Content-Length': String(info.size) });
      if (req.method === 'HEAD') return res.end();
      createReadStream(file)
        .on('error', () => res.destroy())
        .pipe(res);
    })().catch((err) => {
      if (!res.headersSent) fail(500, `${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    });
  });

  await new Promise((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(port, host, () => {
      server.off('error', rejectListen);
      resolveListen();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('static server: no TCP address');
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise((resolveClose) => {
        server.closeAllConnections();
        server.close(() => resolveClose());
      }),
  };
}

// `node scripts/serve-static.mjs [rootDir] [port]`
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const rootDir = process.argv[2] ?? process.cwd();
  const port = Number(process.argv[3] ?? 0);
  const server = await startStaticServer(rootDir, port, { log: (line) => console.log(line) });
  console.log(`serving ${resolve(rootDir)} at ${server.url}/ (Ctrl-C to stop)`);
}
