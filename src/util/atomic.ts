// The one atomic file writer of crate-ts: files are written under a temporary name in the same
// directory (`.NAME.tmp-PID-HEX`, which train's removeStaleTemps recognises) and renamed when
// complete, so a reader never sees a half-written file under its final name (a killed run, a full
// disk). Write errors become DataErrors that name the file, and the temporary file is removed.
// Options: create the directory first (mkdir), and fsync the data before the rename and the
// directory after it (fsync: what checkpoints need to survive a crash of the machine).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataError } from '../errors.js';

/** The low-level write call (replaceable in tests to simulate a full disk). */
export type WriteSyncFn = (fd: number, buf: Uint8Array, offset: number, length: number) => number;
const defaultWrite: WriteSyncFn = (fd, buf, offset, length) => fs.writeSync(fd, buf, offset, length);

function ioError(file: string, e: unknown): DataError {
  const err = e as NodeJS.ErrnoException;
  const why = err.code === 'ENOSPC' ? 'no space left on the device' : err.code === 'EACCES' ? 'permission denied' : (err.code ?? err.message);
  return new DataError(`cannot write '${file}': ${why}${err.code && err.code !== why ? ` (${err.code})` : ''}`, { cause: e });
}

/** A buffered, synchronous writer to `file.tmp-…`, renamed to `file` by close(); abort() removes it. */
export interface AtomicOptions {
  /** The low-level write call (tests simulate a full disk with it). */
  write?: WriteSyncFn;
  /** Create the file's directory (and its parents) first. */
  mkdir?: boolean;
  /** fsync the file before the rename and its directory after (best effort). */
  fsync?: boolean;
}

export class AtomicWriter {
  readonly tmp: string;
  private fd: number;
  private readonly fsync: boolean;
  private buf: Buffer;
  private used = 0;
  private closed = false;
  bytes = 0;

  private readonly write: WriteSyncFn;

  constructor(
    readonly file: string,
    opts: WriteSyncFn | AtomicOptions = {},
    bufferSize = 1 << 20,
  ) {
    const o: AtomicOptions = typeof opts === 'function' ? { write: opts } : opts;
    this.write = o.write ?? defaultWrite;
    this.fsync = o.fsync ?? false;
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      if (o.mkdir) fs.mkdirSync(path.dirname(file), { recursive: true });
      this.fd = fs.openSync(this.tmp, 'wx');
    } catch (e) {
      throw ioError(file, e);
    }
    this.buf = Buffer.allocUnsafe(bufferSize);
  }

  /** Append a string (UTF-8). */
  writeString(s: string): void {
    const need = Buffer.byteLength(s, 'utf8');
    if (this.used + need > this.buf.length) this.flush();
    if (need > this.buf.length) {
      this.writeAll(Buffer.from(s, 'utf8'));
      return;
    }
    this.used += this.buf.write(s, this.used, 'utf8');
  }

  /** Append bytes. */
  writeBytes(b: Uint8Array): void {
    this.flush();
    this.writeAll(b);
  }

  private writeAll(b: Uint8Array): void {
    let off = 0;
    try {
      while (off < b.length) {
        const n = this.write(this.fd, b, off, Math.min(b.length - off, 1 << 30));
        if (n <= 0) throw Object.assign(new Error('write returned 0 bytes'), { code: 'EIO' });
        off += n;
      }
    } catch (e) {
      this.abort();
      throw ioError(this.file, e);
    }
    this.bytes += b.length;
  }

  private flush(): void {
    if (this.used === 0) return;
    const chunk = this.buf.subarray(0, this.used);
    this.used = 0;
    this.writeAll(chunk);
  }

  /** Flush, close and rename to the final name. */
  close(): void {
    this.flush();
    try {
      if (this.fsync) fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.closed = true;
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      this.abort();
      throw ioError(this.file, e);
    }
    if (this.fsync) syncDir(path.dirname(this.file));
  }

  /** Remove the temporary file (after an error); safe to call twice. */
  abort(): void {
    if (!this.closed) {
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
      this.closed = true;
    }
    try {
      fs.unlinkSync(this.tmp);
    } catch {
      /* gone */
    }
  }
}

/** fsync a directory so a rename in it is durable (best effort: not every system allows it). */
function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* not supported here */
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Write a whole file atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array, opts: WriteSyncFn | AtomicOptions = {}): void {
  const w = new AtomicWriter(file, opts);
  if (typeof data === 'string') w.writeString(data);
  else w.writeBytes(data);
  w.close();
}
