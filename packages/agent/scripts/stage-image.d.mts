// Types of stage-image.mjs for the TypeScript tests that import it.
export function entrypointFlags(): string[];
export function stageImage(out: string): Record<string, string>;
