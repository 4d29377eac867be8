// Describe a JSON.parse failure without quoting the input. V8's messages quote the start of the text
// ("Unexpected token 'r', \"root:x:0:0\"... is not valid JSON"), and a file read by a server or
// written into a shared page may be anything a link points at: keep only where it failed.

/** "not valid JSON (at position 3, line 1 column 4)" or "not valid JSON (it ends early)", never the text. */
export function jsonParseProblem(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const at = /at position (\d+)(?: \(line (\d+) column (\d+)\))?/.exec(msg);
  if (at) return `not valid JSON (at position ${at[1]}${at[2] ? `, line ${at[2]} column ${at[3]}` : ''})`;
  if (/end of (JSON )?input/i.test(msg)) return 'not valid JSON (it ends early)';
  if (/unexpected token/i.test(msg)) return 'not valid JSON (an unexpected character)';
  return 'not valid JSON';
}
