#!/usr/bin/env node
// `node test/helpers/crate-ts-src.mjs <command> ...` is bin/crate-ts.js run on the TypeScript sources
// instead of dist/, so tests that need a real child process (signals, pipes, exit codes) test the
// code as it is now, without a build step.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
const { main } = await import('../../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
