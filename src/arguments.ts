import { ArgumentError } from './errors.js';

/**
 * An options argument: `undefined` and `null` both mean "no options"; anything else must be a
 * plain object.
 * @throws ArgumentError for a non-object (a number, a string, an array ...).
 */
export function optionsObject<T extends object>(options: T | null | undefined, argument: string): Partial<T> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new ArgumentError(`${argument} must be an object or null, got ${Array.isArray(options) ? 'an array' : typeof options}`);
  }
  return options;
}
