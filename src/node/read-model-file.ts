/** The Node convenience: a model file by path. Browser bundles never load `node:fs` through it. */
import { ArgumentError } from '../errors.js';
import { readModelFile, type ModelFile, type ReadModelOptions } from '../io/model-file.js';

/**
 * Reads a model file from the file system (Node, Deno, Bun). In a browser it throws
 * ArgumentError: pass `await fetch(url)` or a File to {@link readModelFile} instead.
 *
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
  const fs = (await import(/* @vite-ignore */ specifier)) as { readFile(path: string): Promise<Uint8Array> };
  return readModelFile(await fs.readFile(path), options);
}
