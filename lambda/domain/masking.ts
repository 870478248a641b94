/**
 * Secrets are never shown: oslo.utils' `mask_dict_password`, which Ironic applies to
 * `driver_info` and `instance_info`. A key is secret when it contains (case-insensitively)
 * one of oslo's sanitize keys; nested dicts are masked too.
 */
const SANITIZE_KEYS = [
  'adminpass',
  'admin_pass',
  'password',
  'admin_password',
  'auth_token',
  'new_pass',
  'auth_password',
  'secret_uuid',
  'secret',
  'sys_pswd',
  'token',
  'configdrive',
  'chappassword',
  'encrypted_key',
  'private_key',
  'fernetkey',
  'sslkey',
  'passphrase',
  'cephfskey',
  'keystonepassword',
  'glancepassword',
  'vncpassword',
  'kg_key',
];

export const MASK = '******';

export function isSecretKey(key: string): boolean {
  const lower = key.toLowerCase();
  return SANITIZE_KEYS.some((secret) => lower.includes(secret));
}

export function maskSecrets<T extends Record<string, unknown>>(values: T): Record<string, unknown> {
  const masked: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if (isSecretKey(key)) masked[key] = MASK;
    else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      masked[key] = maskSecrets(value as Record<string, unknown>);
    } else masked[key] = value;
  }
  return masked;
}
