#!/usr/bin/env node
// Thin launcher: the CLI is compiled from src/cli by `npm install` (the `prepare` script runs tsc).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(entry)) {
  console.error(`crate-ts: ${entry} is missing; run \`npm install\` (or \`npm run build\`) in ${root} first.`);
  process.exit(2);
}
const { main } = await import(entry);
process.exitCode = await main(process.argv.slice(2));
