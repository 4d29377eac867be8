// Files written under a temporary name and renamed when complete, so a reader never sees a
// half-written file under its final name (a killed run, a full disk). Write errors become DataErrors
// that name the file, and the temporary file is removed.
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
export class AtomicWriter {
  readonly tmp: string;
  private fd: number;
  private buf: Buffer;
  private used = 0;
  private closed = false;
  bytes = 0;

  constructor(
    readonly file: string,
    private readonly write: WriteSyncFn = defaultWrite,
    bufferSize = 1 << 20,
  ) {
    this.tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      this.fd = fs.openSync(this.tmp, 'w');
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
        const n = this.write(this.fd, b, off, b.length - off);
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
      fs.closeSync(this.fd);
      this.closed = true;
      fs.renameSync(this.tmp, this.file);
    } catch (e) {
      this.abort();
      throw ioError(this.file, e);
    }
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

/** Write a whole file atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array, write?: WriteSyncFn): void {
  const w = new AtomicWriter(file, write);
  if (typeof data === 'string') w.writeString(data);
  else w.writeBytes(data);
  w.close();
}
