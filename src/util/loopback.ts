// Loopback servers and DNS rebinding: a server bound to this machine's loopback interface must only
// answer requests whose Host header names the loopback itself. A web page on another site can make
// a browser send requests to 127.0.0.1 under a name it controls (DNS rebinding); those carry that
// name in Host, and are refused. Shared by `crate-ts neurons view` and `crate-ts serve`.
import { isIP } from 'node:net';

/** True when `host` (an address or name given to listen()) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return m !== null && m[1].startsWith('127.');
}

/**
 * The Host header values a loopback server bound to `bound` on `port` answers: the bound address
 * (IPv6 in brackets) and "localhost", with the port (and without it when the port is 80).
 */
export function loopbackHosts(bound: string, port: number): Set<string> {
  const h = bound.replace(/^\[|\]$/g, '').toLowerCase();
  const names = new Set<string>(['localhost', isIP(h) === 6 ? `[${h}]` : h]);
  if (h === 'localhost') {
    names.add('127.0.0.1');
    names.add('[::1]');
  }
  const out = new Set<string>();
  for (const n of names) {
    out.add(`${n}:${port}`);
    if (port === 80) out.add(n);
  }
  return out;
}

/** True when a request's Host header is one of `allowed` (case-insensitive; a missing Host is refused). */
export function hostAllowed(header: string | undefined, allowed: ReadonlySet<string>): boolean {
  return header !== undefined && allowed.has(header.toLowerCase());
}
