/** The agent's version, sent in `hello` and shown by `/healthz` and `/metrics`. */
export const AGENT_VERSION = '0.1.0';
