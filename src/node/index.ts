/// <reference types="@webgpu/types" preserve="true" />
/**
 * `webgpu-batchnorm/node`: what needs Node's file system, kept out of the browser entries so
 * bundlers never meet `node:fs`.
 * @packageDocumentation
 */
export { readModelFileFromPath } from './read-model-file.js';
