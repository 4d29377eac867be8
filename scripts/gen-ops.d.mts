// Types of scripts/gen-ops.mjs for the TypeScript tests (test/optable.test.ts).
/** Every generated file: path (relative to the repository root) -> contents. Throws on a malformed table. */
export function render(root?: string): Record<string, string>;
