/** The agent's version, reported by `phasekit --version` and in the user agent. */
export const VERSION = '0.1.0';
