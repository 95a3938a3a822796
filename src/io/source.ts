/** Turning what a caller has (a fetch Response, a File, bytes) into bytes, browser-safe. */
import { ArgumentError } from '../errors.js';

/**
 * Where a model file comes from. In the browser: `await fetch(url)` (a Response), an `<input
 * type=file>` File (a Blob), or bytes. In Node: `readFileSync(path)` (a Buffer is a Uint8Array).
 */
export type ModelSource = ArrayBuffer | ArrayBufferView | Blob | Response;

/** The bytes of `source`, without copying when it already is bytes. */
export async function sourceBytes(source: ModelSource, argument = 'source'): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  if (typeof Response !== 'undefined' && source instanceof Response) return new Uint8Array(await source.arrayBuffer());
  throw new ArgumentError(
    `${argument}: expected an ArrayBuffer, a Uint8Array (or other view), a Blob or a Response, got ${describe(source)}`,
  );
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'object') return (v as { constructor?: { name?: string } }).constructor?.name ?? 'an object';
  return typeof v;
}
