// What crate-ts is and where it runs, for the files it writes (run logs, checkpoints, collections,
// SAE directories, benchmark reports) and for `crate-ts --version`: one reader of package.json.
import * as fs from 'node:fs';
import * as os from 'node:os';

let version: string | null = null;

/** The version in crate-ts's package.json (two levels above this module in src/ and in dist/); 'unknown' if unreadable. */
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
