/** A fresh self-signed certificate (its own CA) for a test HTTPS server, made by openssl. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes `tls.key` and `tls.crt` into `dir`, valid for `names` (e.g. `IP:127.0.0.1`). */
export function selfSignedCert(dir: string, names: string, commonName = 'metalplane-test'): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '30',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      `subjectAltName=${names}`,
      '-keyout',
      join(dir, 'tls.key'),
      '-out',
      join(dir, 'tls.crt'),
    ],
    { stdio: 'ignore', timeout: 30_000 },
  );
}
