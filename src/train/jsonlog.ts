// The JSON log of a run (--json-log): one JSON object per line.
//   {"type":"config", ...}   first line of a run (and again at each resume): the resolved model
//                            configuration and hyper-parameters, data source and hash, tokenizer,
//                            the crate-ts version, the backend and the machine
//   {"type":"step", ...}     every optimizer step
//   {"type":"eval", ...}     every evaluation
//   {"type":"save", ...}     every checkpoint written
//   {"type":"summary", ...}  the end of a completed run
import * as fs from 'node:fs';
import * as os from 'node:os';
import { RequestError } from './request-error.js';

let version: string | null = null;

/** The version in crate-ts's package.json (two levels above this module in src/ and in dist/). */
export function crateTsVersion(): string {
  if (version === null) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
      version = typeof pkg.version === 'string' ? pkg.version : 'unknown';
    } catch {
      version = 'unknown';
    }
  }
  return version;
}

/** The machine a run ran on, for logs. */
export function machineInfo(): { os: string; arch: string; cpu: string; cores: number; memory_bytes: number; node: string } {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()}`,
    arch: process.arch,
    cpu: cpus[0]?.model?.trim() || 'unknown',
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    memory_bytes: os.totalmem(),
    node: process.version,
  };
}

export class JsonLog {
  /**
   * Open `file` for a run: truncated for a fresh run, appended to when resuming. Throws a
   * RequestError (field jsonLog) when it cannot be written.
   */
  constructor(readonly file: string, append: boolean) {
    try {
      if (append) fs.appendFileSync(file, '');
      else fs.writeFileSync(file, '');
    } catch (e) {
      throw new RequestError('jsonLog', `'${file}' cannot be written (${(e as { code?: string }).code ?? (e as Error).message})`);
    }
  }

  write(obj: Record<string, unknown>): void {
    fs.appendFileSync(this.file, JSON.stringify(obj) + '\n');
  }
}
