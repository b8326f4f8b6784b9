/** The emulator's version, reported by `GET /health/` (kept in step with package.json). */
export const VERSION = '0.1.0';
