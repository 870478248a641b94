/**
 * The agent's version, sent in `hello` and shown by `/healthz` and `/metrics`. 0.2.0: the
 * first to announce its protocol (2) and features (docs/upgrades.md); 0.1.0 spoke protocol 1.
 */
export const AGENT_VERSION = '0.2.0';
