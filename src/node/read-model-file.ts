/** The Node convenience: a model file by path. Browser bundles never load `node:fs` through it. */
import { ArgumentError, ModelFileError } from '../errors.js';
import { resolveLimits } from '../io/limits.js';
import { readModelFile, type ModelFile, type ReadModelOptions } from '../io/model-file.js';

/**
 * Reads a model file from the file system (Node, Deno, Bun). In a browser it throws
 * ArgumentError: pass `await fetch(url)` or a File to {@link readModelFile} instead.
 *
 * @param options as for {@link readModelFile}; `maxBytes` (default 2 GiB) also bounds the file
 *   itself: a larger file is refused (ModelFileError LIMIT) by its size, before it is read.
 * @example
 * const file = await readModelFileFromPath('checkpoints/resnet18.pt');
 */
export async function readModelFileFromPath(path: string, options: ReadModelOptions = {}): Promise<ModelFile> {
  if (typeof path !== 'string' || path.length === 0) throw new ArgumentError(`path must be a non-empty string, got ${String(path)}`);
  // No Node types in the library build: look the runtime up through globalThis.
  const runtime = (globalThis as { process?: { versions?: { node?: string } } }).process;
  const isNode = typeof runtime?.versions?.node === 'string';
  if (!isNode)
    throw new ArgumentError('readModelFileFromPath needs a file system (Node); in a browser pass fetch(url) or a File to readModelFile');
  // A variable specifier keeps bundlers from resolving node:fs for browser builds (as for `webgpu`).
  const specifier = 'node:fs/promises';
  const fs = (await import(/* @vite-ignore */ specifier)) as {
    readFile(path: string): Promise<Uint8Array>;
    stat(path: string): Promise<{ size: number }>;
  };
  // The limits are checked (and defaulted) as every reader checks them, before the file is touched.
  const { maxBytes } = resolveLimits(options);
  const { size } = await fs.stat(path);
  if (size > maxBytes) {
    throw new ModelFileError(
      'LIMIT',
      `${path}: the file has ${size} bytes, over the maxBytes limit of ${maxBytes}; pass a larger { maxBytes } to read it`,
    );
  }
  return readModelFile(await fs.readFile(path), options);
}
