/**
 * A bounded zip reader for `torch.save` archives. PKWARE APPNOTE.TXT: local file headers
 * (`PK\3\4`), the central directory (`PK\1\2`) and its end record (`PK\5\6`, with the zip64
 * locator `PK\6\7` and record `PK\6\6` for archives past 4 GiB or 65535 entries).
 *
 * Why not fflate's `unzipSync`: it allocates each entry at its declared size and inflates without a
 * cap, so a 2 MB file that declares (or inflates to) 2 GiB costs 2 GiB. Here the central directory
 * is read first, declared sizes are checked against the caller's budget before anything is
 * allocated, stored entries are views of the file (no copy), and deflated ones are inflated by
 * fflate's streaming `Inflate` in chunks that stop at the declared size.
 */
import { Inflate } from 'fflate';
import { ModelFileError } from '../errors.js';
import type { ByteBudget } from './limits.js';

/** One file of the archive, as the central directory describes it. */
export interface ZipEntry {
  readonly name: string;
  /** 0 = stored, 8 = deflated (the only methods read). */
  readonly method: number;
  readonly flags: number;
  readonly compressedSize: number;
  /** Declared uncompressed size. */
  readonly size: number;
  /** Where the entry's data starts in the file (after its local header). */
  readonly dataOffset: number;
}

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const END = 0x06054b50;
const END64_LOCATOR = 0x07064b50;
const END64 = 0x06064b50;
/** DEFLATE cannot expand by more than 1032:1 (RFC 1951: a 258-byte match per 2 bits, roughly). */
const MAX_DEFLATE_RATIO = 1032;
/**
 * The most compressed bytes per Inflate.push. fflate inflates a whole pushed chunk before handing
 * the output over, so each push is also kept to what the declared size still allows (remaining /
 * 1032, plus 1 KiB): an entry that lies about its size is caught within ~1 MiB of output.
 */
const MAX_CHUNK = 1 << 16;

/** True when `bytes` start with a zip local file header. */
export function startsLikeZip(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** True when `bytes` are a whole zip archive: a local header at 0 and a central directory that parses. */
export function isZipArchive(bytes: Uint8Array): boolean {
  if (!startsLikeZip(bytes)) return false;
  try {
    readZipDirectory(bytes, 'zip');
    return true;
  } catch {
    return false;
  }
}

function u64(view: DataView, at: number, where: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ModelFileError('CORRUPT', `${where}: a zip64 size or offset (${v}) is implausible`);
  return Number(v);
}

/** The end-of-central-directory record's position: searched backwards over the longest comment (65535 bytes). */
function findEnd(bytes: Uint8Array, view: DataView): number {
  const lowest = Math.max(0, bytes.byteLength - 22 - 0xffff);
  for (let at = bytes.byteLength - 22; at >= lowest; at--) {
    if (view.getUint32(at, true) === END && at + 22 + view.getUint16(at + 20, true) <= bytes.byteLength) return at;
  }
  return -1;
}

/**
 * The archive's entries, from its central directory.
 * @throws ModelFileError BAD_MAGIC (no local header at byte 0), TRUNCATED (no end record: cut off),
 *   CORRUPT (a directory that points outside the file or is inconsistent).
 */
export function readZipDirectory(bytes: Uint8Array, where: string): ZipEntry[] {
  if (!startsLikeZip(bytes)) {
    const head = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ') || '(empty file)';
    throw new ModelFileError('BAD_MAGIC', `${where}: not a zip archive (expected bytes 50 4b 03 04, got ${head})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength >= 22 ? findEnd(bytes, view) : -1;
  if (end < 0) {
    throw new ModelFileError('TRUNCATED', `${where}: the zip archive has no end-of-central-directory record; is the file complete?`);
  }
  let count = view.getUint16(end + 10, true);
  let cdSize = view.getUint32(end + 12, true);
  let cdOffset = view.getUint32(end + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locator = end - 20;
    if (locator < 0 || view.getUint32(locator, true) !== END64_LOCATOR) {
      throw new ModelFileError('CORRUPT', `${where}: the zip end record needs a zip64 record, which is missing`);
    }
    const at = u64(view, locator + 8, where);
    if (at + 56 > locator || view.getUint32(at, true) !== END64) {
      throw new ModelFileError('CORRUPT', `${where}: the zip64 end record is not where its locator says (byte ${at})`);
    }
    count = u64(view, at + 32, where);
    cdSize = u64(view, at + 40, where);
    cdOffset = u64(view, at + 48, where);
  }
  if (cdOffset + cdSize > end || count * 46 > cdSize) {
    throw new ModelFileError(
      'CORRUPT',
      `${where}: the zip central directory (${count} entries, ${cdSize} bytes at ${cdOffset}) does not fit before its end record at ${end}`,
    );
  }
  const names = new TextDecoder();
  const entries: ZipEntry[] = [];
  let at = cdOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > cdOffset + cdSize || view.getUint32(at, true) !== CENTRAL) {
      throw new ModelFileError('CORRUPT', `${where}: zip central directory entry ${i} at byte ${at} is damaged`);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > cdOffset + cdSize) throw new ModelFileError('CORRUPT', `${where}: zip central directory entry ${i} runs past the directory`);
    const name = names.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    // zip64 extra field (id 1): the 64-bit values of exactly the fields stored as 0xffffffff, in this order.
    for (let e = at + 46 + nameLength; e + 4 <= at + 46 + nameLength + extraLength; ) {
      const id = view.getUint16(e, true);
      const length = view.getUint16(e + 2, true);
      if (id === 1) {
        let p = e + 4;
        const take = (): number => {
          if (p + 8 > e + 4 + length) throw new ModelFileError('CORRUPT', `${where}: zip entry '${name}' has a short zip64 field`);
          const v = u64(view, p, where);
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localOffset === 0xffffffff) localOffset = take();
      }
      e += 4 + length;
    }
    if (localOffset + 30 > bytes.byteLength || view.getUint32(localOffset, true) !== LOCAL) {
      throw new ModelFileError('CORRUPT', `${where}: zip entry '${name}' has no local header at byte ${localOffset}`);
    }
    const dataOffset = localOffset + 30 + view.getUint16(localOffset + 26, true) + view.getUint16(localOffset + 28, true);
    if (dataOffset + compressedSize > cdOffset) {
      throw new ModelFileError(
        'CORRUPT',
        `${where}: zip entry '${name}' (${compressedSize} bytes at ${dataOffset}) overlaps the central directory at ${cdOffset}`,
      );
    }
    entries.push({ name, method, flags, compressedSize, size, dataOffset });
    at = next;
  }
  return entries;
}

/**
 * The uncompressed bytes of `entry`: a view of `bytes` when stored, else inflated into a buffer of
 * the declared size that `budget` is charged for first. Inflation stops, refused as CORRUPT, the
 * moment the output would pass the declared size.
 */
export function zipEntryData(bytes: Uint8Array, entry: ZipEntry, budget: ByteBudget, where: string): Uint8Array {
  if (entry.flags & 1) throw new ModelFileError('CORRUPT', `${where}: zip entry '${entry.name}' is encrypted`);
  const compressed = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  if (entry.method === 0) {
    if (entry.size !== entry.compressedSize) {
      throw new ModelFileError(
        'CORRUPT',
        `${where}: stored zip entry '${entry.name}' declares ${entry.size} bytes but holds ${entry.compressedSize}`,
      );
    }
    return compressed;
  }
  if (entry.method !== 8) {
    throw new ModelFileError(
      'CORRUPT',
      `${where}: zip entry '${entry.name}' uses compression method ${entry.method}; only stored and deflate are read`,
    );
  }
  budget.charge(entry.size, `inflating zip entry '${entry.name}'`);
  if (entry.size > entry.compressedSize * MAX_DEFLATE_RATIO + 1024) {
    throw new ModelFileError(
      'CORRUPT',
      `${where}: zip entry '${entry.name}' declares ${entry.size} bytes from ${entry.compressedSize} compressed, more than deflate can expand`,
    );
  }
  const out = new Uint8Array(entry.size);
  let filled = 0;
  const inflater = new Inflate((chunk) => {
    if (filled + chunk.byteLength > out.byteLength) {
      throw new ModelFileError('CORRUPT', `${where}: zip entry '${entry.name}' inflates past its declared ${entry.size} bytes`);
    }
    out.set(chunk, filled);
    filled += chunk.byteLength;
  });
  try {
    for (let i = 0; ; ) {
      const step = Math.min(MAX_CHUNK, 1024 + Math.ceil((out.byteLength - filled) / MAX_DEFLATE_RATIO));
      const last = i + step >= compressed.byteLength;
      inflater.push(compressed.subarray(i, i + step), last);
      if (last) break;
      i += step;
    }
  } catch (err) {
    if (err instanceof ModelFileError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new ModelFileError(
      /unexpected EOF/i.test(message) ? 'TRUNCATED' : 'CORRUPT',
      `${where}: zip entry '${entry.name}' cannot be inflated (${message})`,
    );
  }
  if (filled !== out.byteLength) {
    throw new ModelFileError('TRUNCATED', `${where}: zip entry '${entry.name}' inflates to ${filled} bytes, it declares ${entry.size}`);
  }
  return out;
}
