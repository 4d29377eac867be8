// "Did you mean" hints for mistyped command, option, backend and config names. A module of its own
// so that the commands can use it without importing the entry point (src/cli/main.ts loads the
// commands; a command importing main.ts back would be an import cycle).

/** The closest known name within a small edit distance, for "did you mean" hints. */
export function closest(word: string, known: readonly string[]): string | null {
  let best: string | null = null,
    bestD = Infinity;
  for (const k of known) {
    const d = editDistance(word.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return best !== null && (bestD <= 2 || (bestD <= 3 && word.length > 6)) ? best : null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}
